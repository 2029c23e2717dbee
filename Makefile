# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# PYTHON builds the project's .venv: one of SUPPORTED_PYTHONS, the versions the extension
# runner supports (tests/test_makefile.py keeps them in step with it and pyproject.toml).
PYTHON ?= python3
SUPPORTED_PYTHONS := 3.9 3.10 3.11 3.12
# Poetry 2.5 itself needs Python 3.10 or later, whatever PYTHON is: it runs from its own
# .tools venv on POETRY_PYTHON, by default the first of these that is 3.10 or later.
POETRY_PYTHON ?= $(shell for python in python3.12 python3.11 python3.10 python3; do \
	$$python -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
	&& { echo $$python; break; }; done)
POETRY_VERSION := 2.5.1
VENV := .venv
TOOLS := .tools
POETRY := $(TOOLS)/bin/poetry
# Options for the demo and the benchmark: make demo ARGS='--set DATABASE_URL=...'
ARGS ?=
# Poetry installs into ./.venv; it lives in its own ./.tools venv so that `poetry sync`
# never removes Poetry's own dependencies from the project environment.
export POETRY_VIRTUALENVS_IN_PROJECT := true
export POETRY_NO_INTERACTION := 1
# What tells two interpreters apart: a venv reports the version and base of its creator.
IDENTITY := import sys; print("%d.%d.%d" % sys.version_info[:3], sys.base_prefix)

.DEFAULT_GOAL := install
.PHONY: install lint test demo bench clean python-check FORCE

# Refuse an unsupported PYTHON (or POETRY_PYTHON) before anything is built, naming a
# command that works.
python-check:
	@found=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>&1 | head -n 1); \
	case " $(SUPPORTED_PYTHONS) " in *" $$found "*) exit 0;; esac; \
	case "$$found" in [0-9]*.[0-9]*) found="Python $$found";; \
		*) found="a command that cannot run ($${found:-no output})";; esac; \
	suggested=$$(for python in $(patsubst %,python%,$(SUPPORTED_PYTHONS)); do \
		$$python -c '' 2>/dev/null && echo $$python; done | tail -n 1); \
	echo "PYTHON=$(PYTHON) is $$found; the extension runner supports Python" \
		"$(firstword $(SUPPORTED_PYTHONS)) to $(lastword $(SUPPORTED_PYTHONS)). Run:" \
		"make PYTHON=$${suggested:-python$(lastword $(SUPPORTED_PYTHONS))} $(or $(MAKECMDGOALS),install)" >&2; \
	exit 2
	@[ "$$($(POETRY_PYTHON) -c 'import sys; print(sys.version_info >= (3, 10))' 2>/dev/null)" = True ] || { \
		echo "Poetry $(POETRY_VERSION) needs Python 3.10 or later, and POETRY_PYTHON is" \
		"'$(POETRY_PYTHON)' (by default the first of python3.12, python3.11, python3.10," \
		"python3 that is 3.10+). Install one, or run: make POETRY_PYTHON=/path/to/python3.12" \
		"$(or $(MAKECMDGOALS),install)" >&2; exit 2; }

# A venv is rebuilt when it was made by another interpreter than the one asked for (or by
# one that no longer runs); its stamp changes only then, which is what makes the rest follow.
define venv_made_by
	@want=$$($(2) -c '$(IDENTITY)') || exit 2; \
	have=$$($(1)/bin/python -c '$(IDENTITY)' 2>/dev/null); \
	if [ "$$want" != "$$have" ]; then \
		if [ -e $(1) ]; then echo "Rebuilding $(1) with $(2): it was made by another Python"; fi; \
		rm -rf $(1) && $(2) -m venv $(1) || exit 2; \
	fi; \
	echo "$$want" | cmp -s - $(1)/.python || echo "$$want" > $(1)/.python
endef

$(TOOLS)/.python: FORCE | python-check
	$(call venv_made_by,$(TOOLS),$(POETRY_PYTHON))

$(POETRY): $(TOOLS)/.python
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check poetry==$(POETRY_VERSION)
	touch $@

$(VENV)/.python: FORCE | python-check
	$(call venv_made_by,$(VENV),$(PYTHON))

$(VENV)/.installed: pyproject.toml poetry.lock $(VENV)/.python | $(POETRY)
	$(POETRY) sync
	touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check .

# The suite runs in TEST_WORKERS processes (pytest-xdist): most tests wait on servers and
# runners, so two workers keep two cores busy (0 runs it in this process alone, as plain
# `pytest` does). Work stealing keeps the tests in their order: the few long ones that
# start runners (tests/e2e, localdev, recipes, reliability) come first, one after the other
# in the first worker, while the second takes the many short ones.
TEST_WORKERS ?= 2

test: lint
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist worksteal

demo: install
	$(VENV)/bin/python -m localdev.demo $(ARGS)

# The scale-out, connections and data lifecycle benches have options of their own
# (SCALEOUT_ARGS, CONNECTIONS_ARGS, LIFECYCLE_ARGS); --quick goes to all four.
SCALEOUT_ARGS ?= $(filter --quick,$(ARGS))
CONNECTIONS_ARGS ?= $(filter --quick,$(ARGS))
LIFECYCLE_ARGS ?= $(filter --quick,$(ARGS))

bench: install
	$(VENV)/bin/python -m localdev.bench $(ARGS)
	$(VENV)/bin/python -m localdev.bench.scaleout $(SCALEOUT_ARGS)
	$(VENV)/bin/python -m localdev.bench.connections $(CONNECTIONS_ARGS)
	$(VENV)/bin/python -m localdev.bench.lifecycle $(LIFECYCLE_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) data .demo .pytest_cache .ruff_cache .coverage bench-results
