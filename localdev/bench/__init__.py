"""`make bench` (`python -m localdev.bench`): the handler path against the bare drivers.

cli runs the measurements and prints the report; measure times one kind of work; sql,
dataapi and e2e hold each backend's work (handler, raw driver, per-event client); workloads
makes the events; machine describes where it ran.
"""
