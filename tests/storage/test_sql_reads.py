"""What the SQL backend adds for reads: the read indexes and the counts its triggers keep,
created by migrations on new and on existing databases alike; cursors over times as SQLite
keeps them; what a caller's numbers and cursors can do."""
import asyncio
from datetime import datetime, timedelta, timezone

import peewee
import pytest
from playhouse.db_url import connect as connect_url

from connect_mongodb_example.errors import InvalidRequest
from connect_mongodb_example.event_record import utcnow
from connect_mongodb_example.storage.base import EventFilter, PageCursor, newest_first
from connect_mongodb_example.storage.sql import SqlEventStore, SqlSettings
from connect_mongodb_example.storage.sql_schema import (
    COUNTS_TABLE,
    EVENTS_TABLE,
    SCHEMA_VERSION,
    VERSION_TABLE,
)
from tests.support.records import purchase_record
from tests.support.sql_databases import first_version_with_events, sql

MINE = {'id': 'EIN-1111-1111-1111', 'owner': {'id': 'VA-000-001'}}
THEIRS = {'id': 'EIN-2222-2222-2222', 'owner': {'id': 'VA-000-002'}}
READ_INDEXES = {
    'connect_events_installation_received_idx': ['installation_id', 'received_at', 'key'],
    'connect_events_installation_status_received_idx':
        ['installation_id', 'status', 'received_at', 'key'],
    # Deletes by age, whatever the installation.
    'connect_events_received_idx': ['received_at'],
}
#: Migration 2's, by the time events were last received: dropped since.
OLD_READ_INDEXES = {'connect_events_installation_recent_idx',
                    'connect_events_installation_status_recent_idx'}


@pytest.fixture(params=['sqlite', pytest.param('postgresql', marks=pytest.mark.postgres)])
def database_url(request):
    return request.getfixturevalue('sqlite_url' if request.param == 'sqlite' else 'postgres_url')


def events(purchase_request, installation, statuses):
    return [purchase_record(purchase_request(f'PR-{index:04d}', status=status),
                         installation=installation)
            for index, status in enumerate(statuses)]


async def test_an_existing_database_is_migrated_and_its_events_counted(
    database_url, purchase_request,
):
    first_version_with_events(database_url, [
        *events(purchase_request, MINE, ['pending', 'pending', 'approved']),
        *events(purchase_request, THEIRS, ['pending']),
        *events(purchase_request, None, ['pending']),
    ])
    store = SqlEventStore(SqlSettings(database_url, pool_size=2))
    try:
        assert await store.count_events(EventFilter(MINE['id'])) == 3
        assert await store.count_events(EventFilter(MINE['id'], status='pending')) == 2
        assert await store.count_events(EventFilter(THEIRS['id'])) == 1
        # New events are counted from now on, redeliveries are not.
        [new] = events(purchase_request, MINE, ['failed'])
        await store.save(new)
        await store.save(new)
        assert await store.count_events(EventFilter(MINE['id'])) == 4
        assert await store.count_events(EventFilter(MINE['id'], status='failed')) == 1
        # Deletes too, those of the events stored before the upgrade included.
        assert await store.delete_events(limit=10, installation_id=MINE['id']) == 4
        assert await store.count_events(EventFilter(MINE['id'])) == 0
        assert await store.count_events(EventFilter(THEIRS['id'])) == 1
    finally:
        await store.close()
    database = connect_url(database_url)
    with database.connection_context():
        indexes = {index.name: index.columns for index in database.get_indexes(EVENTS_TABLE)}
    database.close()
    assert {name: indexes.get(name) for name in READ_INDEXES} == READ_INDEXES
    assert not OLD_READ_INDEXES & set(indexes)
    versions = sql(database_url, f'SELECT version FROM {VERSION_TABLE} ORDER BY version')
    assert [version for (version,) in versions] == list(range(1, SCHEMA_VERSION + 1))
    # Events without an installation are never read, so never counted.
    assert sql(database_url, f'SELECT COUNT(*) FROM {COUNTS_TABLE} '
                             f'WHERE installation_id IS NULL') == [(0,)]


async def test_a_deleted_event_is_taken_off_the_count(database_url, purchase_request):
    store = SqlEventStore(SqlSettings(database_url, pool_size=2))
    try:
        for record in events(purchase_request, MINE, ['pending', 'approved']):
            await store.save(record)
        assert await store.count_events(EventFilter(MINE['id'])) == 2
        database = connect_url(database_url)
        with database.connection_context():
            database.execute_sql(f"DELETE FROM {EVENTS_TABLE} WHERE status = 'pending'")
        database.close()
        assert await store.count_events(EventFilter(MINE['id'])) == 1
        assert await store.count_events(EventFilter(MINE['id'], status='pending')) == 0
    finally:
        await store.close()


async def test_concurrent_first_deliveries_count_every_event_once(database_url,
                                                                   purchase_request):
    records = events(purchase_request, MINE, ['pending'] * 40)
    stores = [SqlEventStore(SqlSettings(database_url, pool_size=8)) for _ in range(2)]
    try:
        # (Schema creation racing between processes is another matter: one at a time here.)
        for store in stores:
            await store.ping()
        # Two processes' stores, each saving every event (one of them a redelivery), on 16
        # connections: PostgreSQL spreads the counts over shards.
        await asyncio.gather(*(store.save(record) for record in records for store in stores))
        assert await stores[0].count_events(EventFilter(MINE['id'])) == 40
    finally:
        for store in stores:
            await store.close()


async def test_a_page_reads_no_request_document(database_url, purchase_request, monkeypatch):
    store = SqlEventStore(SqlSettings(database_url, pool_size=1))
    statements = []
    original = peewee.Database.execute_sql

    def spy(self, sql_text, params=None, *args, **kwargs):
        statements.append(sql_text)
        return original(self, sql_text, params, *args, **kwargs)

    try:
        await store.save(events(purchase_request, MINE, ['pending'])[0])
        monkeypatch.setattr(peewee.Database, 'execute_sql', spy)
        [record] = await store.list_events(EventFilter(MINE['id']), limit=5)
    finally:
        monkeypatch.undo()
        await store.close()
    assert record.request == {}
    [select] = [s for s in statements if s.startswith('SELECT')]
    assert '"request"' not in select
    assert record.received_at.tzinfo == timezone.utc


async def test_cursors_order_times_whatever_their_microseconds(database_url, purchase_request):
    """SQLite keeps times as text, with no fraction when the microsecond is 0
    ('10:00:00' beside '10:00:00.000001'): the cursors must order them as times."""
    base = datetime(2026, 11, 20, 10, 0, 0, tzinfo=timezone.utc)
    moments = [base, base + timedelta(microseconds=1), base + timedelta(microseconds=500_000),
               base + timedelta(microseconds=999_999), base + timedelta(seconds=1),
               base + timedelta(seconds=1, microseconds=1), base + timedelta(seconds=10)]
    records = [purchase_record(purchase_request(f'PR-{n:04d}', updated=f'u{n}'),
                               installation=MINE, received_at=moment)
               for n, moment in enumerate(moments)]
    # The same moments again under other keys: ties the keys break.
    records += [purchase_record(purchase_request(f'PR-{n:04d}', updated=f'v{n}'),
                                installation=MINE, received_at=moment)
                for n, moment in enumerate(moments)]
    store = SqlEventStore(SqlSettings(database_url, pool_size=1))
    try:
        for record in records:
            await store.save(record)
        where = EventFilter(MINE['id'])
        expected = [r.key for r in sorted(records, key=newest_first, reverse=True)]
        assert [r.key for r in await store.list_events(where, limit=50)] == expected
        # One at a time, forwards from each event and backwards from each.
        for place, record in enumerate(sorted(records, key=newest_first, reverse=True)):
            cursor = PageCursor.of(record)
            older = await store.list_events(where, limit=50, after=cursor)
            newer = await store.list_events(where, limit=50, before=cursor)
            assert [r.key for r in older] == expected[place + 1:]
            assert [r.key for r in newer] == expected[:place]
        # A cursor in a time zone other than UTC, or naive (UTC), is the same place.
        record = records[2]
        for moment in (record.received_at.astimezone(timezone(timedelta(hours=-5))),
                       record.received_at.replace(tzinfo=None)):
            page = await store.list_events(where, limit=50,
                                           after=PageCursor(moment, record.key))
            assert [r.key for r in page] == expected[expected.index(record.key) + 1:]
    finally:
        await store.close()


@pytest.mark.parametrize('number', [2 ** 63, 10 ** 30, -1])
async def test_numbers_past_what_the_database_takes_are_invalid_requests(
    database_url, purchase_request, number,
):
    """SQLite's driver raises OverflowError, PostgreSQL 'bigint out of range'; SQLite reads a
    negative limit as none at all. Each is the caller's error (the web app answers 400)."""
    store = SqlEventStore(SqlSettings(database_url, pool_size=1))
    try:
        await store.save(events(purchase_request, MINE, ['pending'])[0])
        for numbers in ({'limit': number}, {'limit': 10, 'offset': number}):
            with pytest.raises(InvalidRequest):
                await store.list_events(EventFilter(MINE['id']), **numbers)
        with pytest.raises(InvalidRequest):
            await store.delete_events(limit=number, installation_id=MINE['id'])
        # The largest numbers the databases take are answered, and nothing was deleted.
        assert len(await store.list_events(EventFilter(MINE['id']), limit=2 ** 63 - 1)) == 1
        assert await store.list_events(EventFilter(MINE['id']), limit=2 ** 63 - 1,
                                       offset=2 ** 63 - 1) == []
        assert await store.count_events(EventFilter(MINE['id'])) == 1
    finally:
        await store.close()


@pytest.mark.parametrize('key', ['\x00', 'EIN-1111/PR-\x00', '\ud800'])
async def test_a_cursor_key_no_event_could_have_is_an_invalid_request(database_url, key):
    """psycopg2 sends no NUL, neither driver a lone surrogate: a forged cursor's error."""
    store = SqlEventStore(SqlSettings(database_url, pool_size=1))
    try:
        for place in ('after', 'before'):
            with pytest.raises(InvalidRequest, match='cursor'):
                await store.list_events(EventFilter(MINE['id']), limit=5,
                                        **{place: PageCursor(utcnow(), key)})
        # A key longer than any stored is a place like another.
        assert await store.list_events(EventFilter(MINE['id']), limit=5,
                                       after=PageCursor(utcnow(), 'x' * 10_000)) == []
    finally:
        await store.close()
