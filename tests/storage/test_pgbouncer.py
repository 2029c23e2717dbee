"""The SQL backend through PgBouncer in transaction pool mode, where a session is not kept
between transactions: connection errors are told apart as without the pooler. (The backend
contract suites run through it too: the `sql-pgbouncer` target of tests/support/backends.py.)
"""
from urllib.parse import quote

import pytest

from connect_mongodb_example.errors import ConfigurationError, StorageUnavailable
from connect_mongodb_example.storage.sql import SqlEventStore, SqlSettings
from tests.support.pgbouncer import ThrowawayPgBouncer, session_pooler
from tests.support.postgres import free_port
from tests.support.records import purchase_record

pytestmark = pytest.mark.postgres


async def save_through(url: str, purchase_request) -> None:
    store = SqlEventStore(SqlSettings(url, pool_size=1))
    try:
        await store.save(purchase_record(purchase_request()))
    finally:
        await store.close()


async def test_a_wrong_password_is_a_configuration_error(
    pgbouncer_server, postgres_url, purchase_request,
):
    url = pgbouncer_server.url(postgres_url).replace(
        quote(pgbouncer_server.password, safe=''), 'not-the-password')
    with pytest.raises(ConfigurationError) as error:
        await save_through(url, purchase_request)
    assert error.value.variable == 'DATABASE_URL'
    assert 'SASL authentication failed' in str(error.value)
    assert 'not-the-password' not in str(error.value)


async def test_a_missing_database_is_a_configuration_error(pgbouncer_server, purchase_request):
    url = pgbouncer_server.url('postgresql://server/no_such_database_here')
    with pytest.raises(ConfigurationError, match='database "no_such_database_here" does not exist'):
        await save_through(url, purchase_request)


@pytest.fixture
def pooler_of_a_stopped_server():
    """PgBouncer in front of a port where no PostgreSQL listens (a server that is down)."""
    yield from session_pooler(f'postgresql://postgres@127.0.0.1:{free_port()}/postgres')


async def test_postgresql_down_behind_the_pooler_is_an_outage(
    pooler_of_a_stopped_server: ThrowawayPgBouncer, purchase_request,
):
    # PgBouncer accepts the client and holds its login until a server connection works:
    # the driver's connect timeout (set short here) ends the wait.
    url = pooler_of_a_stopped_server.url('postgresql://server/events') + '?connect_timeout=2'
    with pytest.raises(StorageUnavailable) as error:
        await save_through(url, purchase_request)
    assert pooler_of_a_stopped_server.password not in str(error.value)
