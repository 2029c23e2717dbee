"""The schedules of an extension's schedulable methods, as Connect keeps them.

In Connect a schedule names a method the extension declared (`@schedulable`), a parameter
and a trigger; when it triggers, the runner gets a scheduled task whose object is the
schedule, reads it, and calls its `method` with it. The emulation makes one schedule per
method and parameter the first time it is run, and triggers it now each time ("run now").
"""
import json
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping

from connect.eaas.core.proto import Schedulable

from localdev.connect_emulator.events import EventFileError, ScheduleRun
from localdev.connect_emulator.objects import ConnectObjects, connect_time


class Schedules:
    def __init__(
        self, objects: ConnectObjects, *, service_id: str, environment_id: str, id_prefix: str,
    ):
        self.objects = objects
        self.service_id = service_id
        self.environment_id = environment_id
        self.id_prefix = id_prefix
        #: (method, parameter) as JSON -> the id of its schedule.
        self._ids: Dict[str, str] = {}

    def trigger(self, schedulable: Schedulable, parameter: Mapping[str, Any]) -> Dict[str, Any]:
        """The schedule of this method and parameter (made the first time), its trigger a
        one-off now, as served to the runner from now on."""
        key = json.dumps([schedulable.method, parameter], sort_keys=True)
        schedule_id = self._ids.setdefault(key, f'{self.id_prefix}-{len(self._ids) + 1:04d}')
        now = connect_time(datetime.now(timezone.utc))
        schedule = self.objects.schedule(schedule_id) or {
            'id': schedule_id,
            'name': schedulable.name,
            'description': schedulable.description,
            'method': schedulable.method,
            'parameter': dict(parameter),
            'status': 'enabled',
            'service': {'id': self.service_id},
            'environment': {'id': self.environment_id},
            'events': {'created': {'at': now}},
        }
        schedule = dict(schedule, trigger={'type': 'onetime', 'date': now})
        self.objects.put_schedule(schedule)
        return schedule


def schedulable_of(run: ScheduleRun, declared: List[Schedulable]) -> Schedulable:
    """The declared schedulable a run names, or the only one; `EventFileError` otherwise."""
    methods = ', '.join(item.method for item in declared)
    if run.method is None:
        if len(declared) > 1:
            raise EventFileError(run.source, f'the extension declares several schedulable '
                                             f'methods ({methods}): name one as "method"')
        return declared[0]
    for schedulable in declared:
        if schedulable.method == run.method:
            return schedulable
    raise EventFileError(run.source, f'the extension declares no schedulable method '
                                     f'{run.method} (it declares: {methods})')
