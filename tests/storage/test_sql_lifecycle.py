"""What the SQL backend adds to the data lifecycle: the installations table, and deletes that
stay exact when processes race (SQLite's write lock, PostgreSQL's row locks) or when the
counts' rows they share would have them wait on each other."""
import asyncio
import multiprocessing
import traceback
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List

import psycopg2
import pytest

from connect_mongodb_example.errors import InvalidRequest
from connect_mongodb_example.installation_record import INSTALLED, InstallationRecord
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.base import EventFilter
from connect_mongodb_example.storage.registry import close_all, stores_for
from connect_mongodb_example.storage.sql import SqlEventStore, SqlSettings
from connect_mongodb_example.storage.sql_schema import (
    COUNTS_TABLE,
    EVENTS_TABLE,
    INSTALLATIONS_TABLE,
    SHARDS,
)
from tests.support.records import purchase_record
from tests.support.sql_databases import sql

MINE = 'EIN-1111-1111-1111'
THEIRS = 'EIN-2222-2222-2222'
STATUSES = ('pending', 'approved', 'failed', 'inquiring')
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
START_TIMEOUT_SECONDS = 120


@pytest.fixture(params=['sqlite', pytest.param('postgresql', marks=pytest.mark.postgres)])
def database_url(request):
    return request.getfixturevalue('sqlite_url' if request.param == 'sqlite' else 'postgres_url')


async def fill(store, purchase_request, installation_id: str, count: int) -> None:
    for n in range(count):
        await store.save(purchase_record(
            purchase_request(f'PR-{n:04d}', status=STATUSES[n % len(STATUSES)]),
            installation={'id': installation_id}, received_at=T0 - timedelta(minutes=n)))


def counted(url: str, installation_id: str) -> int:
    """What the counts say of the installation, summed over statuses and shards."""
    [(events,)] = sql(url, f'SELECT COALESCE(SUM(events), 0) FROM {COUNTS_TABLE} '
                           f"WHERE installation_id = '{installation_id}'")
    return int(events)


def stored(url: str, installation_id: str) -> int:
    [(events,)] = sql(url, f'SELECT COUNT(*) FROM {EVENTS_TABLE} '
                           f"WHERE installation_id = '{installation_id}'")
    return events


async def test_the_installations_table_has_a_column_per_field(database_url):
    store = SqlEventStore(SqlSettings(database_url, pool_size=1))
    try:
        # Changed in another time zone: read back in UTC, the same moment.
        record = InstallationRecord(
            MINE, INSTALLED, datetime(2026, 11, 1, 9, 0, tzinfo=timezone(timedelta(hours=1))),
            account_id='VA-000-001', purge_after=T0 + timedelta(days=30))
        assert await store.save_installation(record) == record
        [stored_record] = await store.list_installations()
        assert stored_record.changed_at.tzinfo == timezone.utc
        assert stored_record == record
    finally:
        await store.close()
    columns = [row[0] for row in sql(database_url, f'SELECT * FROM {INSTALLATIONS_TABLE}')]
    assert columns == [MINE]
    database_columns = _columns(database_url, INSTALLATIONS_TABLE)
    assert database_columns == [field.name for field in fields(InstallationRecord)]


def _columns(url: str, table: str) -> List[str]:
    from playhouse.db_url import connect as connect_url

    database = connect_url(url)
    with database.connection_context():
        names = [column.name for column in database.get_columns(table)]
    database.close()
    return names


@pytest.mark.parametrize('changes', [
    {'installation_id': 'EIN-' + 'x' * 200}, {'account_id': 'VA-\x00'},
    {'environment_id': '\ud800'}, {'status': 'x' * 40},
])
async def test_an_installation_no_column_could_hold_is_refused_by_both(database_url, changes):
    store = SqlEventStore(SqlSettings(database_url, pool_size=1))
    try:
        record = InstallationRecord(**{'installation_id': MINE, 'status': INSTALLED,
                                       'changed_at': T0, **changes})
        with pytest.raises(InvalidRequest, match='installation'):
            await store.save_installation(record)
        assert await store.list_installations() == []
        # Read with the same text, it is simply not there.
        assert await store.get_installation(record.installation_id) is None
    finally:
        await store.close()


async def test_a_delete_names_what_it_deletes(database_url, purchase_request):
    store = SqlEventStore(SqlSettings(database_url, pool_size=1))
    try:
        await fill(store, purchase_request, MINE, 3)
        with pytest.raises(InvalidRequest, match='never every event'):
            await store.delete_events(limit=10)
        assert await store.delete_events(limit=0, installation_id=MINE) == 0
        assert await store.delete_events(limit=10, installation_id='EIN-\x00') == 0
        assert await store.count_events(EventFilter(MINE)) == 3
    finally:
        await store.close()


@pytest.mark.postgres
async def test_deleters_sharing_a_shard_of_the_counts_never_deadlock(postgres_url):
    """Two connections whose deletes take off the same rows of the counts (same shard):
    row by row, in the order their events went, they would lock those rows in opposite
    orders and PostgreSQL would kill one as a deadlock (it did, before schema version 6)."""
    stores = [SqlEventStore(SqlSettings(postgres_url, pool_size=1)) for _ in range(SHARDS + 1)]
    try:
        shards: Dict[int, List[SqlEventStore]] = {}
        for store in stores:
            pid = await store._call(
                lambda store=store: store._database.execute_sql(
                    'SELECT pg_backend_pid()').fetchone()[0])
            shards.setdefault(pid % SHARDS, []).append(store)
        # Seventeen connections, sixteen shards: two share one.
        pair = next(shared for shared in shards.values() if len(shared) > 1)[:2]
        # Statuses in an order unlike the received times', so that two batches meet them in
        # different orders.
        sql(postgres_url, f"""
            INSERT INTO {EVENTS_TABLE} (key, request_id, status, updated, event_type,
                installation_id, received_at, last_received_at, delivery_count, request)
            SELECT 'k' || n, 'PR-' || n,
                (ARRAY['pending', 'approved', 'failed', 'inquiring'])[1 + mod(n * 7919, 4)],
                'u', 'purchase', '{MINE}', now() - n * interval '1 second', now(), 1, '{{}}'
            FROM generate_series(1, 4000) n RETURNING id""")
        assert counted(postgres_url, MINE) == 4000
        deleted: List[int] = []

        async def job(store: SqlEventStore) -> None:
            while True:
                count = await store.delete_events(limit=20, installation_id=MINE)
                deleted.append(count)
                if count == 0:
                    return

        await asyncio.gather(*(job(store) for store in pair))
    finally:
        for store in stores:
            await store.close()
    assert sum(deleted) == 4000
    assert (stored(postgres_url, MINE), counted(postgres_url, MINE)) == (0, 0)


@pytest.mark.postgres
async def test_a_delete_whose_rows_another_holds_waits_for_it(postgres_url, purchase_request):
    """0 means that no event matches: not that another transaction held them all. Held by
    one that rolls back, they are deleted; by one that deletes them, none are left."""
    store = SqlEventStore(SqlSettings(postgres_url, pool_size=1))
    holder = psycopg2.connect(postgres_url)
    try:
        await fill(store, purchase_request, MINE, 5)
        for outcome, expected in (('ROLLBACK', 5), ('DELETE', 0)):
            with holder.cursor() as cursor:
                cursor.execute(f'SELECT id FROM {EVENTS_TABLE} FOR UPDATE')
                if outcome == 'DELETE':
                    cursor.execute(f'DELETE FROM {EVENTS_TABLE}')
            delete = asyncio.ensure_future(store.delete_events(limit=10, installation_id=MINE))
            await _until_a_backend_waits_on_a_lock(postgres_url)
            assert not delete.done()
            if outcome == 'ROLLBACK':
                holder.rollback()
            else:
                holder.commit()
            assert await delete == expected
            if outcome == 'ROLLBACK':
                await fill(store, purchase_request, MINE, 5)
        assert (stored(postgres_url, MINE), counted(postgres_url, MINE)) == (0, 0)
    finally:
        holder.close()
        await store.close()


async def _until_a_backend_waits_on_a_lock(url: str) -> None:
    for _ in range(600):
        if sql(url, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        'AND datname = current_database()'):
            return
        await asyncio.sleep(0.05)
    raise AssertionError('no backend came to wait on a lock')


def test_two_processes_purging_one_installation_end_exact(database_url, purchase_request):
    """Two processes (two runner workers' lifecycle jobs) purge the same installation at
    once, in small batches: every event goes once, and the counts follow."""
    async def prepare() -> None:
        [store] = stores_for(load_settings({'DATABASE_URL': database_url}))
        await fill(store, purchase_request, MINE, 120)
        await fill(store, purchase_request, THEIRS, 10)
        await close_all()

    asyncio.run(prepare())
    outcomes = _in_processes(2, database_url, MINE)
    assert [outcome for outcome in outcomes if isinstance(outcome, str)] == []
    assert sum(sum(batches) for batches in outcomes) == 120
    # Each process went on until it found nothing left.
    assert all(batches[-1] == 0 for batches in outcomes)
    assert (stored(database_url, MINE), counted(database_url, MINE)) == (0, 0)
    assert (stored(database_url, THEIRS), counted(database_url, THEIRS)) == (10, 10)


def _in_processes(processes: int, url: str, installation_id: str) -> List[Any]:
    context = multiprocessing.get_context('forkserver')
    context.set_forkserver_preload([__name__])
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [context.Process(target=_purge, args=(url, installation_id, barrier, results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        return [results.get(timeout=START_TIMEOUT_SECONDS) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()


def _purge(url: str, installation_id: str, barrier: Any, results: Any) -> None:
    """In a process of its own: every batch's count, or the error's traceback."""
    async def purge() -> List[int]:
        [store] = stores_for(load_settings({'DATABASE_URL': url}))
        batches: List[int] = []
        try:
            await store.ping()
            barrier.wait(timeout=START_TIMEOUT_SECONDS)
            while not batches or batches[-1]:
                batches.append(await store.delete_events(limit=7,
                                                         installation_id=installation_id))
        finally:
            await close_all()
        return batches

    try:
        results.put(asyncio.run(purge()))
    except BaseException:  # noqa: BLE001 - the test reports it
        results.put(traceback.format_exc())
