"""What the SQL backend adds for reads: the read indexes and the counts its triggers keep,
created by migrations on new and on existing databases alike."""
import asyncio
from datetime import timezone

import peewee
import pytest
from playhouse.db_url import connect as connect_url

from connect_mongodb_example.storage.base import EventFilter
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
    'connect_events_installation_recent_idx': ['installation_id', 'last_received_at', 'key'],
    'connect_events_installation_status_recent_idx':
        ['installation_id', 'status', 'last_received_at', 'key'],
}


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
    finally:
        await store.close()
    database = connect_url(database_url)
    with database.connection_context():
        indexes = {index.name: index.columns for index in database.get_indexes(EVENTS_TABLE)}
    database.close()
    assert {name: indexes.get(name) for name in READ_INDEXES} == READ_INDEXES
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
