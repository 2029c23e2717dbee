# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
TOOLS := .tools
POETRY := $(TOOLS)/bin/poetry
POETRY_VERSION := 2.5.1
# Poetry installs into ./.venv; it lives in its own ./.tools venv so that `poetry sync`
# never removes Poetry's own dependencies from the project environment.
export POETRY_VIRTUALENVS_IN_PROJECT := true
export POETRY_NO_INTERACTION := 1
# Options for the demo: make demo ARGS=--keep-running
ARGS ?=

.PHONY: install lint test demo bench clean

$(POETRY):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check poetry==$(POETRY_VERSION)

$(VENV)/.installed: pyproject.toml poetry.lock | $(POETRY)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(POETRY) sync
	touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/pytest

demo: install
	$(VENV)/bin/python -m localdev.demo $(ARGS)

bench: install
	$(VENV)/bin/python -m localdev.bench

clean:
	rm -rf $(VENV) $(TOOLS) data .demo .pytest_cache .ruff_cache
