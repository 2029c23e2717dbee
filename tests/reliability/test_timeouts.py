"""A storage call that hangs is cut off by STORAGE_TIMEOUT_SECONDS and blocks nobody else.

The assertions are on results and stored rows, never on durations: `deliver` only carries a
generous guard so that a real hang fails the test instead of stalling the suite.
"""
import asyncio
from contextlib import closing

import psycopg2
import pytest
from connect.eaas.core.enums import ResultType

from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import stores_for
from connect_mongodb_example.storage.sql_schema import EVENTS_TABLE
from tests.reliability.helpers import deliver, key_of, postgres_rows, sqlite_rows
from tests.support.postgres import create_database, drop_database

TIMEOUT = '0.5'


@pytest.fixture
def second_postgres_url(postgres_server):
    url = create_database(postgres_server)
    yield url
    drop_database(postgres_server, url)


@pytest.mark.postgres
async def test_locked_table_reschedules_its_event_while_another_database_keeps_storing(
    postgres_url, second_postgres_url, purchase_request, logger, report,
):
    locked = {'DATABASE_URL': postgres_url, 'STORAGE_TIMEOUT_SECONDS': TIMEOUT,
              'DATABASE_POOL_SIZE': '2'}
    free = {'DATABASE_URL': second_postgres_url, 'STORAGE_TIMEOUT_SECONDS': TIMEOUT}
    # Create the schema, then let another session hold the table lock, as a long migration
    # or a forgotten transaction would.
    ready = await deliver(purchase_request('PR-7300-0000-0000-000'), locked, logger)
    assert ready.status == ResultType.SUCCESS
    with closing(psycopg2.connect(postgres_url)) as holder:
        holder.cursor().execute(f'LOCK TABLE {EVENTS_TABLE} IN ACCESS EXCLUSIVE MODE')
        stuck = asyncio.ensure_future(deliver(purchase_request('PR-7300-0000-0000-001'),
                                              locked, logger))
        requests = [purchase_request(f'PR-7300-0000-0001-{index:03d}') for index in range(50)]
        others = await asyncio.gather(*(deliver(request, free, logger) for request in requests))
        assert (await stuck).status == ResultType.RESCHEDULE
        assert postgres_rows(second_postgres_url).keys() == {key_of(r) for r in requests}
        holder.rollback()  # releases the lock; the abandoned write now goes through
    assert {response.status for response in others} == {ResultType.SUCCESS}

    # Connect redelivers the rescheduled event. The write abandoned at the timeout was not
    # cancelled in the database, so the event may be counted twice, but it is stored once.
    again = await deliver(purchase_request('PR-7300-0000-0000-001'), locked, logger)
    assert again.status == ResultType.SUCCESS
    rows = postgres_rows(postgres_url)
    assert sorted((row[0], row[3]) for row in rows.values()) == [
        ('PR-7300-0000-0000-000', 1), ('PR-7300-0000-0000-001', 2),
    ]
    report(stuck_rescheduled=1, other_database_stored=len(others))


async def test_hanging_backend_does_not_hold_up_events_of_another(
    fake_backend, sqlite_url, purchase_request, logger, report,
):
    hanging = {'STORAGE_BACKENDS': 'fake', 'STORAGE_TIMEOUT_SECONDS': TIMEOUT}
    serving = {'DATABASE_URL': sqlite_url, 'STORAGE_TIMEOUT_SECONDS': TIMEOUT}
    [fake] = stores_for(load_settings(hanging))
    fake.hang = True
    stuck = [deliver(purchase_request(f'PR-7400-0000-0000-{i:03d}'), hanging, logger)
             for i in range(5)]
    served = [deliver(purchase_request(f'PR-7400-0000-0001-{i:03d}'), serving, logger)
              for i in range(100)]
    responses = await asyncio.gather(*stuck, *served)
    assert [response.status for response in responses] == (
        [ResultType.RESCHEDULE] * 5 + [ResultType.SUCCESS] * 100)
    assert fake.records == {}
    rows = sqlite_rows(sqlite_url)
    assert sorted(row[0] for row in rows.values()) == [
        f'PR-7400-0000-0001-{i:03d}' for i in range(100)]
    assert {row[3] for row in rows.values()} == {1}
    report(hanging_rescheduled=5, other_backend_stored=len(rows))


async def test_hanging_second_backend_reschedules_and_redelivery_completes_both(
    fake_backend, sqlite_url, purchase_request, logger,
):
    """With two backends, the one that answered keeps its write; the redelivery after the
    hang only counts one more delivery there and stores the event in the other."""
    config = {'STORAGE_BACKENDS': 'sql,fake', 'DATABASE_URL': sqlite_url,
              'STORAGE_TIMEOUT_SECONDS': TIMEOUT}
    fake = stores_for(load_settings(config))[1]
    fake.hang = True
    first = await deliver(purchase_request(), config, logger)
    fake.hang = False
    second = await deliver(purchase_request(), config, logger)
    assert (first.status, second.status) == (ResultType.RESCHEDULE, ResultType.SUCCESS)
    assert [row[3] for row in sqlite_rows(sqlite_url).values()] == [2]
    assert [record.delivery_count for record in fake.records.values()] == [1]
