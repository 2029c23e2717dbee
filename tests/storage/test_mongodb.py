"""The MongoDB driver backend: configuration, idempotent writes and error mapping.

The logic runs against mongomock-motor, reached through the same client factory for both
driver selections; the real PyMongo and Motor clients are exercised against a closed port.
tests/storage/test_mongodb_integration.py runs the behaviours against a real server.
"""
import asyncio
import copy
import logging
from datetime import timedelta, timezone
from urllib.parse import quote_plus

import pytest
from connect.eaas.core.enums import ResultType
from mongomock_motor import AsyncMongoMockCollection
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)
from pymongo.uri_parser import parse_uri

from connect_mongodb_example.errors import (
    ConfigurationError,
    InvalidRequest,
    StorageRejected,
    StorageUnavailable,
)
from connect_mongodb_example.event_record import STORED_FIELDS, EventType, build_record
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage import mongodb
from connect_mongodb_example.storage.mongo_documents import (
    EVENT_INDEXES,
    KEY_INDEX_NAME,
    REQUEST_INDEX_NAME,
)
from connect_mongodb_example.storage.mongodb import MongoEventStore, close_client
from connect_mongodb_example.variables import ConfigReader
from tests.storage.mongo_fakes import FakeMongo
from tests.support.delivery import deliver
from tests.support.records import purchase_record

PASSWORD = 'pa$$:w@rd/1'
URI = f'mongodb://events-writer:{quote_plus(PASSWORD)}@db1.example.com:27017,db2.example.com/'


def settings_from(config):
    return MongoEventStore.parse_settings(ConfigReader(config))


@pytest.fixture
def fake_mongo(monkeypatch):
    return FakeMongo().install(monkeypatch)


@pytest.fixture(params=['pymongo', 'motor'])
def driver(request):
    return request.param


@pytest.fixture
async def store(fake_mongo, driver):
    store = MongoEventStore(settings_from({'MONGODB_URI': URI, 'MONGODB_DRIVER': driver}))
    yield store
    await store.close()


def stored_documents(fake_mongo):
    return list(fake_mongo.collection().find({}, {'_id': 0}).sort('key'))


# Configuration

def test_uri_settings_and_defaults():
    settings = settings_from({'MONGODB_URI': URI})
    assert (settings.database, settings.collection, settings.driver, settings.timeout_ms) == (
        'connect_events', 'events', 'pymongo', 5000)
    assert settings.hosts == 'db1.example.com:27017,db2.example.com:27017'
    assert PASSWORD not in repr(settings)
    assert quote_plus(PASSWORD) not in repr(settings)


def test_describe_names_hosts_database_and_collection_only():
    store = MongoEventStore(settings_from({
        'MONGODB_URI': URI, 'MONGODB_DATABASE': 'crm', 'MONGODB_COLLECTION': 'pr_events',
        'MONGODB_DRIVER': 'Motor',
    }))
    assert store.describe() == (
        'mongodb (db1.example.com:27017,db2.example.com:27017/crm.pr_events via motor)')


def test_tutorial_form_builds_an_atlas_uri_with_quoted_credentials():
    user, password = 'ops@acme:eu', 'p@ss:w/rd?%'
    settings = settings_from({
        'DB_HOST': 'cluster0.abcde.mongodb.net', 'DB_USER': user, 'DB_PASSWORD': password,
        'DB': 'tutorial', 'DRIVER_COLLECTION': 'requests',
    })
    assert settings.uri == (
        f'mongodb+srv://{quote_plus(user)}:{quote_plus(password)}@cluster0.abcde.mongodb.net/'
        f'?retryWrites=true&w=majority')
    # The driver reads back exactly the user and password that were set.
    parsed = parse_uri('mongodb://' + settings.uri.split('://', 1)[1])
    assert (parsed['username'], parsed['password']) == (user, password)
    assert (settings.hosts, settings.database, settings.collection) == (
        'cluster0.abcde.mongodb.net', 'tutorial', 'requests')
    assert password not in MongoEventStore(settings).describe()


def test_uri_wins_over_the_tutorial_form():
    settings = settings_from({'MONGODB_URI': URI, 'DB_HOST': 'cluster0.abcde.mongodb.net'})
    assert settings.uri == URI


@pytest.mark.parametrize(('config', 'variable', 'words'), [
    ({}, 'MONGODB_URI', 'is required'),
    ({'DB_HOST': 'cluster0.abcde.mongodb.net', 'DB_USER': 'u'}, 'DB_PASSWORD', 'is required'),
    ({'DB_HOST': 'cluster0.abcde.mongodb.net', 'DB_PASSWORD': 'x'}, 'DB_USER', 'is required'),
    ({'DB_HOST': 'localhost:27017', 'DB_USER': 'u', 'DB_PASSWORD': 'x'}, 'DB_HOST',
     'MONGODB_URI instead'),
    ({'MONGODB_URI': 'postgresql://u:secret-pw@h/db'}, 'MONGODB_URI', 'mongodb://'),
    ({'MONGODB_URI': 'mongodb://u:secret-pw@/'}, 'MONGODB_URI', 'host'),
    ({'MONGODB_URI': 'mongodb://u:secret-pw@ss@h/'}, 'MONGODB_URI', 'escaped'),
    ({'MONGODB_URI': 'mongodb+srv://u:secret-pw@c.example.net:27017/'}, 'MONGODB_URI',
     'no port'),
    ({'MONGODB_URI': 'mongodb://u:secret-pw@h/?tls=maybe'}, 'MONGODB_URI', 'tls'),
    ({'MONGODB_URI': URI, 'MONGODB_DRIVER': 'mongoengine'}, 'MONGODB_DRIVER', 'pymongo, motor'),
    ({'MONGODB_URI': URI, 'MONGODB_DATABASE': 'a.b'}, 'MONGODB_DATABASE', 'not a valid'),
    ({'MONGODB_URI': URI, 'DRIVER_COLLECTION': 'x$y'}, 'DRIVER_COLLECTION', 'not a valid'),
    ({'MONGODB_URI': URI, 'MONGODB_TIMEOUT_MS': '10'}, 'MONGODB_TIMEOUT_MS', 'between'),
])
def test_bad_configuration_is_named_and_secrets_are_not_echoed(config, variable, words):
    with pytest.raises(ConfigurationError) as caught:
        settings_from(config)
    assert caught.value.variable == variable
    assert words in str(caught.value)
    assert 'secret-pw' not in str(caught.value)
    assert 'secret-pw' not in repr(caught.value)


def test_backend_is_registered_beside_sql(sqlite_url):
    settings = load_settings({
        'STORAGE_BACKENDS': 'sql,mongodb', 'DATABASE_URL': sqlite_url, 'MONGODB_URI': URI,
    })
    assert [name for name, _ in settings.backend_settings] == ['sql', 'mongodb']


# Writes and reads (mongomock, both driver selections)

async def test_first_delivery_stores_every_field(store, fake_mongo, driver, purchase_request,
                                                 installation):
    record = purchase_record(purchase_request(), installation=installation)
    assert await store.save(record) == 1
    [document] = stored_documents(fake_mongo)
    millisecond = record.received_at.replace(
        microsecond=record.received_at.microsecond // 1000 * 1000)
    # Every declared field, as the record has it; BSON dates: UTC, millisecond precision.
    assert document == {**{name: getattr(record, name) for name, _ in STORED_FIELDS},
                        'received_at': millisecond, 'last_received_at': millisecond}
    assert document['request'] == purchase_request()
    assert (document['asset_id'], document['account_id']) == ('AS-1234-5678-9012', 'VA-000-001')
    assert fake_mongo.drivers == [driver]
    assert fake_mongo.options[0]['serverSelectionTimeoutMS'] == 5000
    assert fake_mongo.options[0]['tz_aware'] is True


async def test_ten_deliveries_are_one_document_counted_ten_times(
    store, fake_mongo, purchase_request,
):
    first = purchase_record(purchase_request())
    counts = [await store.save(first)]
    for minutes in range(1, 10):
        # A redelivery carries its own receive time; nothing else may change the record.
        later = first.received_at + timedelta(minutes=minutes)
        other_type = EventType('changed', PURCHASE_REQUEST.statuses)
        counts.append(await store.save(build_record(
            purchase_request(), other_type, received_at=later)))
    assert counts == list(range(1, 11))
    [document] = stored_documents(fake_mongo)
    assert document['delivery_count'] == 10
    assert document['event_type'] == 'asset_purchase_request_processing'
    assert document['received_at'] == first.received_at.replace(
        microsecond=first.received_at.microsecond // 1000 * 1000)
    assert document['last_received_at'] - document['received_at'] == timedelta(minutes=9)


async def test_hundred_concurrent_distinct_saves_share_one_client(
    store, fake_mongo, purchase_request, monkeypatch,
):
    created = []
    original = AsyncMongoMockCollection.create_index

    async def counting_create_index(self, *args, **kwargs):
        created.append(kwargs['name'])
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(AsyncMongoMockCollection, 'create_index', counting_create_index)
    records = [purchase_record(purchase_request(f'PR-0000-0000-0000-{i:03d}')) for i in range(100)]
    counts = await asyncio.gather(*(store.save(record) for record in records))
    assert counts == [1] * 100
    documents = stored_documents(fake_mongo)
    assert [d['request_id'] for d in documents] == [r.request_id for r in records]
    assert {d['delivery_count'] for d in documents} == {1}
    assert len(fake_mongo.clients) == 1
    # The indexes were created once for the store, not once per save.
    assert sorted(created) == sorted(options['name'] for _, options in EVENT_INDEXES)


async def test_indexes_are_unique_on_key_and_tolerate_tutorial_documents(
    store, fake_mongo, purchase_request,
):
    # The tutorial inserted raw requests: documents without `key`.
    fake_mongo.collection().insert_many([{'id': 'PR-1'}, {'id': 'PR-2'}])
    await store.save(purchase_record(purchase_request()))
    indexes = fake_mongo.collection().index_information()
    assert indexes[KEY_INDEX_NAME]['unique'] is True
    assert indexes[KEY_INDEX_NAME]['key'] == [('key', 1)]
    assert indexes[REQUEST_INDEX_NAME]['key'] == [('request_id', 1), ('installation_id', 1)]
    assert fake_mongo.collection().count_documents({}) == 3


@pytest.fixture
def key_index_conflicts(monkeypatch):
    """The server refuses our key index because one on the same keys exists (code 85);
    the other index is created as usual."""
    original = AsyncMongoMockCollection.create_index

    async def conflicting(self, keys, **options):
        if options['name'] == KEY_INDEX_NAME:
            raise OperationFailure('Index already exists with a different name: key_1', 85)
        return await original(self, keys, **options)

    monkeypatch.setattr(AsyncMongoMockCollection, 'create_index', conflicting)


async def test_an_existing_unique_index_on_the_key_is_used(store, fake_mongo, purchase_request,
                                                           key_index_conflicts, caplog):
    fake_mongo.collection().create_index([('key', 1)], name='key_1', unique=True)
    record = purchase_record(purchase_request())
    assert await store.save(record) == 1
    assert await store.save(record) == 2
    assert f'index {KEY_INDEX_NAME} not created' in caplog.text
    [document] = stored_documents(fake_mongo)
    assert (document['key'], document['delivery_count']) == (record.key, 2)


async def test_an_existing_non_unique_index_on_the_key_is_refused(
    store, fake_mongo, purchase_request, key_index_conflicts,
):
    """Without a unique index racing first deliveries would store one document each."""
    fake_mongo.collection().create_index([('key', 1)], name='key_1')
    with pytest.raises(StorageRejected) as caught:
        await store.save(purchase_record(purchase_request()))
    assert str(caught.value) == (
        f'{store.describe()}: the collection has a non-unique index on key; drop it so that '
        f'{KEY_INDEX_NAME} can keep one document per event')
    assert stored_documents(fake_mongo) == []
    assert KEY_INDEX_NAME not in fake_mongo.collection().index_information()


async def test_find_filters_by_installation_oldest_first(store, purchase_request):
    first = purchase_record(purchase_request(status='pending'), installation={'id': 'EIN-A'})
    for offset, (status, installation) in enumerate(
        [('pending', 'EIN-A'), ('approved', 'EIN-A'), ('inquiring', 'EIN-B')],
    ):
        await store.save(purchase_record(
            purchase_request(status=status), installation={'id': installation},
            received_at=first.received_at + timedelta(seconds=offset),
        ))
    await store.save(purchase_record(purchase_request('PR-OTHER', status='pending')))
    everything = await store.find(first.request_id)
    assert [(r.status, r.installation_id) for r in everything] == [
        ('pending', 'EIN-A'), ('approved', 'EIN-A'), ('inquiring', 'EIN-B')]
    only_a = await store.find(first.request_id, 'EIN-A')
    assert [r.status for r in only_a] == ['pending', 'approved']
    assert only_a[0].received_at.tzinfo is not None
    assert only_a[0].received_at.utcoffset() == timedelta(0)
    assert only_a[0].request == purchase_request(status='pending')
    assert await store.find(first.request_id, 'EIN-NONE') == []


async def test_handler_input_is_never_mutated(fake_mongo, purchase_request, installation,
                                              logger):
    request = purchase_request()
    pristine = copy.deepcopy(request)
    config = {'STORAGE_BACKENDS': 'mongodb', 'MONGODB_URI': URI}
    for _ in range(2):
        response = await deliver(request, config=config, logger=logger,
                                      installation=installation)
        assert response.status == ResultType.SUCCESS
    assert request == pristine
    assert '_id' not in request
    [document] = stored_documents(fake_mongo)
    assert document['delivery_count'] == 2
    assert document['request'] == pristine


async def test_racing_first_deliveries_still_count(store, fake_mongo, purchase_request,
                                                   monkeypatch):
    """The other process's upsert inserts the key between our match and our insert: MongoDB
    answers DuplicateKeyError, and the retried update now matches and counts."""
    calls = []
    original = AsyncMongoMockCollection.find_one_and_update

    async def racing_update(self, filter, update, **kwargs):
        calls.append(filter)
        if len(calls) == 1:
            await original(self, filter, update, **kwargs)  # the other process's write
            raise DuplicateKeyError('E11000 duplicate key error collection: events', 11000)
        return await original(self, filter, update, **kwargs)

    monkeypatch.setattr(AsyncMongoMockCollection, 'find_one_and_update', racing_update)
    assert await store.save(purchase_record(purchase_request())) == 2
    assert len(calls) == 2
    [document] = stored_documents(fake_mongo)
    assert document['delivery_count'] == 2


async def test_close_then_reuse_opens_a_new_client(store, fake_mongo, purchase_request):
    record = purchase_record(purchase_request())
    await store.save(record)
    await store.ping()
    await store.close()
    await store.close()  # closing twice is harmless
    assert await store.save(record) == 2
    assert len(fake_mongo.clients) == 2


async def test_close_client_awaits_only_what_needs_awaiting():
    closed = []

    class SyncClose:  # Motor
        def close(self):
            closed.append('motor')

    class AsyncClose:  # PyMongo's asyncio client
        async def close(self):
            closed.append('pymongo')

    await close_client(SyncClose())
    await close_client(AsyncClose())
    assert closed == ['motor', 'pymongo']


# Error mapping

@pytest.mark.parametrize(('error', 'expected'), [
    (ServerSelectionTimeoutError('db1.example.com:27017: timed out'), StorageUnavailable),
    (NetworkTimeout('db1.example.com:27017: timed out'), StorageUnavailable),
    (AutoReconnect('connection closed'), StorageUnavailable),
    (ConnectionFailure('connection refused'), StorageUnavailable),
    (OperationFailure('not primary', 10107, {'errorLabels': ['RetryableWriteError']}),
     StorageUnavailable),
    (OperationFailure('Authentication failed.', 18), ConfigurationError),
    (OperationFailure('not authorized on connect_events to execute command', 13),
     ConfigurationError),
    (OperationFailure('Document failed validation', 121), StorageRejected),
    (DocumentTooLarge('BSON document too large (17000000 bytes)'), InvalidRequest),
    (OperationFailure('BSONObj size: 17000000 is invalid', 10334), InvalidRequest),
])
async def test_driver_errors_are_mapped(store, purchase_request, monkeypatch, error, expected):
    async def failing(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(AsyncMongoMockCollection, 'find_one_and_update', failing)
    with pytest.raises(expected) as caught:
        await store.save(purchase_record(purchase_request()))
    assert caught.value.__cause__ is error
    assert store.describe() in str(caught.value)


async def test_error_messages_never_carry_the_password(store, purchase_request, monkeypatch):
    async def leaky(self, *args, **kwargs):
        raise ServerSelectionTimeoutError(f'cannot reach {URI} (password {PASSWORD})')

    monkeypatch.setattr(AsyncMongoMockCollection, 'find_one_and_update', leaky)
    with pytest.raises(StorageUnavailable) as caught:
        await store.save(purchase_record(purchase_request()))
    assert PASSWORD not in str(caught.value)
    assert quote_plus(PASSWORD) not in str(caught.value)


async def test_unreachable_mongodb_reschedules_the_event(fake_mongo, purchase_request, logger,
                                                         monkeypatch):
    async def unreachable(self, *args, **kwargs):
        raise ServerSelectionTimeoutError('db1.example.com:27017: timed out')

    monkeypatch.setattr(AsyncMongoMockCollection, 'create_index', unreachable)
    response = await deliver(
        purchase_request(), config={'STORAGE_BACKENDS': 'mongodb', 'MONGODB_URI': URI},
        logger=logger,
    )
    assert response.status == ResultType.RESCHEDULE


# The real driver clients, against a port where nothing listens

@pytest.mark.parametrize(('driver_name', 'class_name'), [
    ('pymongo', 'AsyncMongoClient'), ('motor', 'AsyncIOMotorClient'),
])
async def test_real_clients_report_an_unreachable_server_without_secrets(
    driver_name, class_name, purchase_request, caplog,
):
    caplog.set_level(logging.DEBUG)
    store = MongoEventStore(settings_from({
        'MONGODB_URI': f'mongodb://writer:{quote_plus(PASSWORD)}@127.0.0.1:1/',
        'MONGODB_DRIVER': driver_name, 'MONGODB_TIMEOUT_MS': '100',
    }))
    try:
        with pytest.raises(StorageUnavailable) as caught:
            await store.save(purchase_record(purchase_request()))
        assert type(store._client).__name__ == class_name
        with pytest.raises(StorageUnavailable):
            await store.ping()
    finally:
        await store.close()
    assert store._client is None
    assert '127.0.0.1:1' in str(caught.value)
    for text in (str(caught.value), caplog.text):
        assert PASSWORD not in text
        assert quote_plus(PASSWORD) not in text


def test_default_driver_is_pymongo_asyncio_client():
    assert mongodb.client_class('pymongo').__name__ == 'AsyncMongoClient'
    assert mongodb.client_class('motor').__name__ == 'AsyncIOMotorClient'


def test_received_times_come_back_as_utc():
    from connect_mongodb_example.storage.mongo_documents import to_record
    document = {
        'key': 'k', 'request_id': 'PR-1', 'status': 'pending', 'updated': 'u',
        'event_type': 'e', 'received_at': '2026-11-20T10:15:03.123Z', 'delivery_count': 3,
        'request': {'id': 'PR-1'},
    }
    record = to_record(document)
    assert record.received_at.tzinfo == timezone.utc
    assert record.last_received_at == record.received_at
    assert record.delivery_count == 3


# The lifecycle's edges (mongomock)

async def test_a_delete_needs_an_installation_or_a_time_and_a_whole_limit(
    store, fake_mongo, purchase_request,
):
    await store.save(purchase_record(purchase_request(), installation={'id': 'EIN-A'}))
    with pytest.raises(InvalidRequest, match='installation or a time'):
        await store.delete_events(limit=10)
    with pytest.raises(InvalidRequest, match='limit'):
        await store.delete_events(limit=-1, installation_id='EIN-A')
    assert await store.delete_events(limit=0, installation_id='EIN-A') == 0
    assert await store.delete_events(limit=10, installation_id='\ud800') == 0
    assert len(stored_documents(fake_mongo)) == 1


async def test_an_installation_id_that_is_no_text_is_refused(store, fake_mongo):
    from datetime import datetime

    from connect_mongodb_example.installation_record import INSTALLED, InstallationRecord

    odd = InstallationRecord('EIN-\ud800', INSTALLED, datetime(2026, 1, 1, tzinfo=timezone.utc))
    with pytest.raises(InvalidRequest, match='not valid text'):
        await store.save_installation(odd)
    assert await store.get_installation('EIN-\ud800') is None
    assert fake_mongo.collection(name='events_installations').count_documents({}) == 0


async def test_a_failing_repair_does_not_fail_the_read(store, fake_mongo, purchase_request,
                                                       monkeypatch, caplog):
    from connect_mongodb_example.storage import mongo_counts
    from connect_mongodb_example.storage.base import EventFilter

    async def failing(*args):
        raise StorageUnavailable('db1.example.com:27017: timed out')

    await store.save(purchase_record(purchase_request(), installation={'id': 'EIN-A'}))
    monkeypatch.setattr(mongo_counts, 'sweep', failing)
    assert await store.count_events(EventFilter('EIN-A')) == 1
    await store._sweeping
    assert 'repairing the counts failed: db1.example.com:27017: timed out' in caplog.text
