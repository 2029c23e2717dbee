"""Fixtures shared by the whole suite."""
import logging
import os
from typing import Any, Callable, Dict, Iterator

import pytest

from connect_mongodb_example.storage.registry import close_all
from tests.support import mongo_server, pgbouncer
from tests.support.postgres import (
    LOCAL_SERVER_URL,
    DatabasePool,
    ThrowawayPostgres,
    server_answers,
)
from tests.support.requests import purchase_request as make_purchase_request


@pytest.fixture
def purchase_request() -> Callable[..., Dict[str, Any]]:
    """A factory of realistic purchase requests: `purchase_request(status='approved', ...)`."""
    return make_purchase_request


@pytest.fixture
def installation() -> Dict[str, Any]:
    return {
        'id': 'EIN-8436-7221-1234',
        'owner': {'id': 'VA-000-001', 'name': 'Vendor One'},
        'environment': {'id': 'ENV-1234-5678-01'},
        'settings': {},
    }


@pytest.fixture
def logger() -> logging.LoggerAdapter:
    return logging.LoggerAdapter(logging.getLogger('tests.extension'), {})


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f'sqlite:///{tmp_path}/events.sqlite3'


@pytest.fixture(autouse=True)
async def _close_stores() -> Iterator[None]:
    """Stores are process-wide singletons; each test starts with none and closes its own."""
    yield
    await close_all()


@pytest.fixture(scope='session')
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server URL (an admin connection to its `postgres` database).

    TEST_POSTGRES_URL wins; then the server on 127.0.0.1:5432; else a throwaway server.
    """
    configured = os.environ.get('TEST_POSTGRES_URL')
    if configured:
        yield configured
        return
    if server_answers(LOCAL_SERVER_URL):
        yield LOCAL_SERVER_URL
        return
    try:
        server = ThrowawayPostgres()
        server.start()
    except Exception as error:  # noqa: BLE001 - reported as the skip reason
        pytest.skip(f'PostgreSQL tests not run: no server on 127.0.0.1:5432 and a throwaway '
                    f'server could not start ({error})')
    try:
        yield server.url()
    finally:
        server.destroy()


@pytest.fixture(scope='session')
def postgres_databases(postgres_server) -> Iterator[DatabasePool]:
    pool = DatabasePool(postgres_server)
    yield pool
    pool.close()


@pytest.fixture
def postgres_url(postgres_databases) -> Iterator[str]:
    """A fresh, empty database for one test (emptied and renamed afterwards, or dropped)."""
    url = postgres_databases.take()
    yield url
    postgres_databases.give_back(url)


@pytest.fixture(scope='session')
def pgbouncer_server(postgres_server) -> Iterator[pgbouncer.ThrowawayPgBouncer]:
    """PgBouncer in transaction pool mode in front of the PostgreSQL server (skips without
    the pgbouncer program)."""
    yield from pgbouncer.session_pooler(postgres_server)


@pytest.fixture
def pgbouncer_url(pgbouncer_server, postgres_url) -> str:
    """The test's fresh database (`postgres_url`), through PgBouncer."""
    return pgbouncer_server.url(postgres_url)


@pytest.fixture(scope='session')
def mongodb_server() -> Iterator[mongo_server.MongoServer]:
    """A MongoDB server: MONGODB_URI when set, else a throwaway SecantusDB (skips if none)."""
    yield from mongo_server.session_server()


@pytest.fixture
def fake_backend(monkeypatch):
    """Registers the in-memory `fake` backend; select it with STORAGE_BACKENDS=fake."""
    from connect_mongodb_example import storage
    from tests.support.fake_store import FakeEventStore

    monkeypatch.setitem(storage.BACKENDS, 'fake', FakeEventStore)
    FakeEventStore.data.clear()
    FakeEventStore.installations.clear()
    return FakeEventStore
