"""The SQL backend against SQLite and a real PostgreSQL server."""
import asyncio
import sqlite3
from datetime import timedelta

import peewee
import pytest

from connect_mongodb_example.errors import InvalidRequest, StorageUnavailable
from connect_mongodb_example.event_record import utcnow
from connect_mongodb_example.storage.sql import SqlEventStore, SqlSettings
from connect_mongodb_example.storage.sql_schema import (
    EVENTS_TABLE,
    SCHEMA_VERSION,
    VERSION_TABLE,
    ensure_schema,
)
from connect_mongodb_example.variables import ConfigReader
from tests.support.postgres import free_port
from tests.support.records import purchase_record, summary


@pytest.fixture(params=['sqlite', pytest.param('postgresql', marks=pytest.mark.postgres)])
def database_url(request):
    fixture = 'sqlite_url' if request.param == 'sqlite' else 'postgres_url'
    return request.getfixturevalue(fixture)


@pytest.fixture
async def store(database_url):
    store = SqlEventStore(SqlSettings(database_url, pool_size=8))
    yield store
    await store.close()


async def test_saved_record_reads_back_with_every_field(store, purchase_request, installation):
    request = purchase_request(status='approved')
    record = purchase_record(request, installation=installation)
    assert await store.save(record) == 1
    [stored] = await store.find(record.request_id)
    assert summary(stored) == summary(record)
    assert stored.request == request
    assert abs(stored.received_at - record.received_at) < timedelta(milliseconds=1)
    assert stored.received_at.tzinfo is not None


async def test_redelivery_counts_and_keeps_first_write_fields(store, purchase_request):
    first = purchase_record(purchase_request(), received_at=utcnow() - timedelta(minutes=5))
    later = purchase_record(purchase_request(note='changed after first delivery'))
    assert await store.save(first) == 1
    assert await store.save(later) == 2
    [stored] = await store.find(first.request_id)
    assert stored.delivery_count == 2
    assert stored.request['note'] == ''
    assert abs(stored.received_at - first.received_at) < timedelta(milliseconds=1)
    assert abs(stored.last_received_at - later.received_at) < timedelta(milliseconds=1)


async def test_ten_concurrent_redeliveries_give_one_record(store, purchase_request):
    record = purchase_record(purchase_request())
    counts = await asyncio.gather(*(store.save(record) for _ in range(10)))
    assert sorted(counts) == list(range(1, 11))
    [stored] = await store.find(record.request_id)
    assert stored.delivery_count == 10


async def test_hundred_concurrent_distinct_events_are_all_stored(store, purchase_request):
    records = [
        purchase_record(purchase_request(f'PR-1234-5678-9012-{index:03d}')) for index in range(100)
    ]
    assert await asyncio.gather(*(store.save(record) for record in records)) == [1] * 100
    found = await asyncio.gather(*(store.find(record.request_id) for record in records))
    assert [[item.key for item in records_] for records_ in found] == [
        [record.key] for record in records
    ]


async def test_each_status_change_is_its_own_record(store, purchase_request):
    for status, updated in (('pending', 't1'), ('inquiring', 't2'), ('pending', 't3')):
        await store.save(purchase_record(purchase_request(status=status, updated=updated)))
    stored = await store.find('PR-1234-5678-9012-001')
    assert [(item.status, item.updated) for item in stored] == [
        ('pending', 't1'), ('inquiring', 't2'), ('pending', 't3'),
    ]


async def test_find_is_limited_to_one_installation(store, purchase_request, installation):
    other = {'id': 'EIN-0000-0000-0002', 'owner': {'id': 'PA-000-002'}}
    await store.save(purchase_record(purchase_request(updated='t1'), installation=installation))
    await store.save(purchase_record(purchase_request(updated='t2'), installation=other))
    mine = await store.find('PR-1234-5678-9012-001', installation_id=installation['id'])
    theirs = await store.find('PR-1234-5678-9012-001', installation_id=other['id'])
    assert [(item.installation_id, item.account_id) for item in mine] == [
        ('EIN-8436-7221-1234', 'VA-000-001'),
    ]
    assert [(item.installation_id, item.account_id) for item in theirs] == [
        ('EIN-0000-0000-0002', 'PA-000-002'),
    ]


async def test_a_several_megabyte_request_is_stored_whole(store, purchase_request):
    request = purchase_request(note='x' * 3_000_000)
    await store.save(purchase_record(request))
    [stored] = await store.find(request['id'])
    assert stored.request == request


async def test_store_reconnects_after_close(store, purchase_request):
    await store.save(purchase_record(purchase_request(updated='t1')))
    await store.close()
    await store.save(purchase_record(purchase_request(updated='t2')))
    assert len(await store.find('PR-1234-5678-9012-001')) == 2


async def test_schema_is_created_once_named_and_versioned(store, database_url, purchase_request):
    await store.ping()
    # A second process (another store) on the same database must find the schema ready.
    second = SqlEventStore(SqlSettings(database_url, pool_size=1))
    await second.save(purchase_record(purchase_request()))
    await second.close()
    database = store._database
    with database.connection_context():
        assert ensure_schema(database) == SCHEMA_VERSION
        versions = [row[0] for row in database.execute_sql(f'SELECT version FROM {VERSION_TABLE}')]
        indexes = {index.name: index for index in database.get_indexes(EVENTS_TABLE)}
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    assert indexes['connect_events_idempotency_key_uniq'].unique
    assert indexes['connect_events_idempotency_key_uniq'].columns == ['key']
    assert 'connect_events_request_installation_idx' in indexes


async def test_postgres_payload_column_is_jsonb(postgres_url, purchase_request):
    # Two connections: the store's worker thread keeps one, this thread reads with the other.
    store = SqlEventStore(SqlSettings(postgres_url, pool_size=2))
    await store.save(purchase_record(purchase_request()))
    database = store._database
    with database.connection_context():
        [(column_type,)] = database.execute_sql(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = %s AND column_name = 'request'", (EVENTS_TABLE,),
        ).fetchall()
        [(product,)] = database.execute_sql(
            f"SELECT request->'asset'->'product'->>'id' FROM {EVENTS_TABLE}",
        ).fetchall()
    await store.close()
    assert (column_type, product) == ('jsonb', 'PRD-276-377-545')


async def test_sqlite_relative_url_creates_the_data_directory(
    tmp_path, monkeypatch, purchase_request,
):
    monkeypatch.chdir(tmp_path)
    settings = SqlEventStore.parse_settings(ConfigReader({}))
    store = SqlEventStore(settings)
    await store.save(purchase_record(purchase_request()))
    await store.close()
    rows = sqlite3.connect(tmp_path / 'data' / 'events.sqlite3').execute(
        f'SELECT request_id, delivery_count FROM {EVENTS_TABLE}').fetchall()
    assert rows == [('PR-1234-5678-9012-001', 1)]


async def test_unreachable_postgres_is_storage_unavailable_without_password(purchase_request):
    url = f'postgresql://app:hunter2@127.0.0.1:{free_port()}/events'
    store = SqlEventStore(SqlSettings(url, pool_size=1))
    with pytest.raises(StorageUnavailable) as error:
        await store.save(purchase_record(purchase_request()))
    assert 'hunter2' not in str(error.value)
    assert 'app:***@127.0.0.1' in str(error.value)
    assert isinstance(error.value.__cause__, peewee.OperationalError)
    await store.close()


async def test_describe_hides_the_password():
    store = SqlEventStore(SqlSettings('postgresql://app:hunter2@db:5432/events', pool_size=1))
    assert store.describe() == 'sql (postgresql://app:***@db:5432/events)'


async def test_values_over_the_column_lengths_are_refused_before_writing(store, purchase_request):
    record = purchase_record(purchase_request('PR-' + 'x' * 200))
    with pytest.raises(InvalidRequest, match='request_id of request PR-x+ is over 128 characters'):
        store.check_storable(record)


async def test_nul_is_kept_by_sqlite_and_refused_for_postgresql(database_url, purchase_request):
    store = SqlEventStore(SqlSettings(database_url, pool_size=1))
    record = purchase_record(purchase_request(note='a\x00b'))
    if database_url.startswith('sqlite'):
        store.check_storable(record)
        await store.save(record)
        [stored] = await store.find(record.request_id)
        assert stored.request['note'] == 'a\x00b'
    else:
        with pytest.raises(InvalidRequest, match='contains NUL'):
            store.check_storable(record)
    await store.close()


@pytest.mark.postgres
async def test_a_row_postgresql_refuses_is_an_invalid_request_not_a_retry(
    postgres_url, purchase_request,
):
    """Were a value to slip past check_storable, the data error must fail the task rather than
    be retried for ever."""
    store = SqlEventStore(SqlSettings(postgres_url, pool_size=1))
    record = purchase_record(purchase_request(updated='t' * 100))
    with pytest.raises(InvalidRequest, match='value too long'):
        await store.save(record)
    assert await store.find(record.request_id) == []
    await store.close()
