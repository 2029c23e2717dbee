"""The suite's PostgreSQL databases (`postgres_url`, tests/support/postgres.py): a database a
test gives back is reused only when it is as a new one, under a new name nothing left
running can reach."""
import psycopg2
import pytest

from connect_mongodb_example.event_record import build_record
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.base import EventFilter
from connect_mongodb_example.storage.registry import close_all, stores_for
from tests.support.postgres import DatabasePool, database_state, run_sql

pytestmark = pytest.mark.postgres

#: Every object of the public schema: tables, indexes, sequences, views; then functions.
IN_PUBLIC = ("SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace)"
             " + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace)")


@pytest.fixture
def pool(postgres_server):
    pool = DatabasePool(postgres_server)
    yield pool
    pool.close()


def oid_of(server_url: str, url: str) -> list:
    """The database's oid, which a rename keeps ([] once it is gone)."""
    return run_sql(server_url, 'SELECT oid FROM pg_database WHERE datname = %s',
                   (url.rsplit('/', 1)[1],))


def exists(server_url: str, url: str) -> bool:
    return run_sql(server_url, 'SELECT count(*) FROM pg_database WHERE datname = %s',
                   (url.rsplit('/', 1)[1],)) == [(1,)]


async def stored_one_event(url: str, request: dict, installation: dict) -> int:
    """Saves `request` through the extension (its whole schema: tables, triggers,
    functions); how many events the installation then holds."""
    [store] = stores_for(load_settings({'DATABASE_URL': url}))
    record = build_record(request, PURCHASE_REQUEST, installation=installation)
    await store.save(record)
    count = await store.count_events(EventFilter(installation_id=record.installation_id))
    await close_all()
    return count


async def test_a_database_given_back_is_new_again_under_another_name(
    pool, postgres_server, purchase_request, installation,
):
    url = pool.take()
    new = database_state(url)
    oid = oid_of(postgres_server, url)
    assert await stored_one_event(url, purchase_request(), installation) == 1
    assert run_sql(url, IN_PUBLIC) != [(0,)]
    lingering = psycopg2.connect(url)

    pool.give_back(url)
    reused = pool.take()

    assert reused != url
    assert not exists(postgres_server, url)
    assert oid_of(postgres_server, reused) == oid  # the same database, renamed
    assert database_state(reused) == new
    assert run_sql(reused, IN_PUBLIC) == [(0,)]
    with pytest.raises(psycopg2.Error):  # ended, and its database's name is gone
        lingering.cursor().execute('SELECT 1')
    lingering.close()
    # The extension finds no schema and makes it again: nothing of the first test is left.
    assert await stored_one_event(reused, purchase_request(), installation) == 1
    pool.give_back(reused)


def test_a_database_that_does_not_empty_to_a_new_one_is_dropped(pool, postgres_server):
    url = pool.take()
    run_sql(url, 'CREATE SCHEMA kept_by_a_test')

    pool.give_back(url)

    assert not exists(postgres_server, url)
    assert pool.take() != url
