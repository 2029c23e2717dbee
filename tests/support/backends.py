"""Every registered backend, reachable from a test: its configuration, and the server it
needs when there is one to start here.

A backend without an entry in `_CONFIGURATIONS` is tried with its variables' defaults, which
suits an in-memory backend; a backend that needs a server gets an entry (see README,
"Fork it").
"""
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, Dict, List

import pytest

from connect_mongodb_example.storage import BACKENDS
from connect_mongodb_example.storage.registry import close_all
from tests.storage.mongo_fakes import FakeMongo

DATA_API_KEY = 'contract-data-api-key'
Configuration = Callable[[pytest.FixtureRequest], AsyncIterator[Dict[str, str]]]


@asynccontextmanager
async def _sqlite(request: pytest.FixtureRequest) -> AsyncIterator[Dict[str, str]]:
    yield {'STORAGE_BACKENDS': 'sql', 'DATABASE_URL': request.getfixturevalue('sqlite_url')}


@asynccontextmanager
async def _postgresql(request: pytest.FixtureRequest) -> AsyncIterator[Dict[str, str]]:
    yield {'STORAGE_BACKENDS': 'sql', 'DATABASE_URL': request.getfixturevalue('postgres_url')}


@asynccontextmanager
async def _pgbouncer(request: pytest.FixtureRequest) -> AsyncIterator[Dict[str, str]]:
    # PostgreSQL through PgBouncer in transaction mode: no session state may be relied on.
    yield {'STORAGE_BACKENDS': 'sql', 'DATABASE_URL': request.getfixturevalue('pgbouncer_url')}


@asynccontextmanager
async def _mongodb(request: pytest.FixtureRequest) -> AsyncIterator[Dict[str, str]]:
    # mongomock-motor behind the driver's client factory: no MongoDB server here.
    FakeMongo().install(request.getfixturevalue('monkeypatch'))
    yield {'STORAGE_BACKENDS': 'mongodb', 'MONGODB_URI': 'mongodb://127.0.0.1:27017'}


@asynccontextmanager
async def _dataapi(request: pytest.FixtureRequest) -> AsyncIterator[Dict[str, str]]:
    from localdev.dataapi_server import DataApiServer

    server = DataApiServer(api_key=DATA_API_KEY)
    await server.start()
    try:
        yield {'STORAGE_BACKENDS': 'dataapi', 'DATA_API_URL': server.base_url,
               'DATA_API_KEY': DATA_API_KEY}
    finally:
        # Clients first: the server's shutdown waits for connections they keep open.
        await close_all()
        await server.stop()


#: backend name -> {target name: configuration}; a backend may be tested on several servers.
_CONFIGURATIONS: Dict[str, Dict[str, Configuration]] = {
    'sql': {'sql-sqlite': _sqlite, 'sql-postgresql': _postgresql, 'sql-pgbouncer': _pgbouncer},
    'mongodb': {'mongodb': _mongodb},
    'dataapi': {'dataapi': _dataapi},
}
#: Targets that need a server this machine may not have.
_MARKS = {'sql-postgresql': pytest.mark.postgres, 'sql-pgbouncer': pytest.mark.postgres}


def backend_targets() -> List[object]:
    """One pytest param per (backend, server) of every registered backend."""
    return [pytest.param(target, marks=_MARKS.get(target, ()), id=target)
            for name in BACKENDS for target in _CONFIGURATIONS.get(name, {name: None})]


@asynccontextmanager
async def backend_config(
    target: str, request: pytest.FixtureRequest,
) -> AsyncIterator[Dict[str, str]]:
    """The variables that select `target` alone, its server running meanwhile."""
    for configurations in _CONFIGURATIONS.values():
        if target in configurations:
            async with configurations[target](request) as config:
                yield config
            return
    yield {'STORAGE_BACKENDS': target}
