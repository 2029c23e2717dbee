"""The MongoDB driver backend against a real server, with both drivers.

Runs when MONGODB_URI is set (the GitHub workflow's mongo service sets it), e.g.
`MONGODB_URI=mongodb://localhost:27017 .venv/bin/pytest -m mongodb`. Every test writes to a
collection of its own, dropped afterwards.
"""
import asyncio
import copy
import os
import uuid

import pytest
from pymongo import MongoClient

from connect_mongodb_example.errors import InvalidRequest, StorageRejected
from connect_mongodb_example.storage.mongo_documents import KEY_INDEX_NAME, REQUEST_INDEX_NAME
from connect_mongodb_example.storage.mongodb import MongoEventStore
from connect_mongodb_example.variables import ConfigReader
from tests.support.records import purchase_record

MONGODB_URI = os.environ.get('MONGODB_URI', '')
if not MONGODB_URI:
    pytest.skip('MONGODB_URI not set: real-MongoDB tests not run', allow_module_level=True)

pytestmark = pytest.mark.mongodb
DATABASE = 'connect_events_tests'


@pytest.fixture(scope='module')
def server():
    client = MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000, tz_aware=True)
    yield client
    client.close()


@pytest.fixture
def collection(server):
    name = f'events_{uuid.uuid4().hex[:12]}'
    yield server[DATABASE][name]
    server[DATABASE].drop_collection(name)


@pytest.fixture(params=['pymongo', 'motor'])
async def make_store(request, collection):
    stores = []

    def make() -> MongoEventStore:
        store = MongoEventStore(MongoEventStore.parse_settings(ConfigReader({
            'MONGODB_URI': MONGODB_URI, 'MONGODB_DATABASE': DATABASE,
            'MONGODB_COLLECTION': collection.name, 'MONGODB_DRIVER': request.param,
        })))
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
def store(make_store):
    return make_store()


async def test_ten_deliveries_are_one_document(store, collection, purchase_request,
                                               installation):
    request = purchase_request()
    pristine = copy.deepcopy(request)
    record = purchase_record(request, installation=installation)
    counts = [await store.save(record) for _ in range(10)]
    assert counts == list(range(1, 11))
    [document] = collection.find({}, {'_id': 0})
    assert document['delivery_count'] == 10
    assert document['key'] == record.key
    assert document['installation_id'] == 'EIN-8436-7221-1234'
    assert document['request'] == pristine
    assert document['received_at'].utcoffset().total_seconds() == 0
    assert request == pristine
    assert '_id' not in request


async def test_hundred_concurrent_distinct_saves(store, collection, purchase_request):
    records = [purchase_record(purchase_request(f'PR-0000-0000-0000-{i:03d}')) for i in range(100)]
    assert await asyncio.gather(*(store.save(r) for r in records)) == [1] * 100
    assert collection.count_documents({}) == 100
    assert collection.distinct('delivery_count') == [1]


async def test_racing_first_deliveries_from_two_clients_count_every_delivery(
    make_store, collection, purchase_request,
):
    """Two processes (two clients) deliver the same new event at once: the unique index
    makes one upsert lose with a duplicate key error, which the store retries."""
    first, second = make_store(), make_store()
    record = purchase_record(purchase_request())
    counts = await asyncio.gather(*(
        store.save(record) for _ in range(10) for store in (first, second)
    ))
    assert sorted(counts) == list(range(1, 21))
    [document] = collection.find({})
    assert document['delivery_count'] == 20


async def test_find_and_indexes(store, collection, purchase_request):
    for status, installation in (('pending', 'EIN-A'), ('approved', 'EIN-A'),
                                 ('inquiring', 'EIN-B')):
        await store.save(purchase_record(purchase_request(status=status),
                                      installation={'id': installation}))
    records = await store.find('PR-1234-5678-9012-001', 'EIN-A')
    assert [r.status for r in records] == ['pending', 'approved']
    assert len(await store.find('PR-1234-5678-9012-001')) == 3
    indexes = collection.index_information()
    assert indexes[KEY_INDEX_NAME]['unique'] is True
    assert REQUEST_INDEX_NAME in indexes
    await store.ping()


async def test_document_over_16mb_is_an_invalid_request(store, collection, purchase_request):
    request = purchase_request(note='x' * (17 * 1024 * 1024))
    with pytest.raises(InvalidRequest):
        await store.save(purchase_record(request))
    assert collection.count_documents({}) == 0


async def test_wrong_password_is_rejected(collection, purchase_request):
    if '@' not in MONGODB_URI:
        pytest.skip('MONGODB_URI has no credentials: the server does not check passwords')
    scheme, rest = MONGODB_URI.split('://', 1)
    userinfo, host = rest.rsplit('@', 1)
    user = userinfo.split(':', 1)[0]
    store = MongoEventStore(MongoEventStore.parse_settings(ConfigReader({
        'MONGODB_URI': f'{scheme}://{user}:wrong-password-123@{host}',
        'MONGODB_DATABASE': DATABASE, 'MONGODB_COLLECTION': collection.name,
    })))
    try:
        with pytest.raises(StorageRejected) as caught:
            await store.save(purchase_record(purchase_request()))
    finally:
        await store.close()
    assert 'wrong-password-123' not in str(caught.value)


async def test_pages_and_counts_use_the_read_indexes(store, collection, purchase_request):
    from connect_mongodb_example.storage import mongo_documents
    from connect_mongodb_example.storage.base import EventFilter
    from tests.support.records import purchase_record

    for index, status in enumerate(('pending', 'approved', 'pending')):
        await store.save(purchase_record(purchase_request(f'PR-{index}', status=status),
                                         installation={'id': 'EIN-A'}))
    await store.save(purchase_record(purchase_request('PR-9'), installation={'id': 'EIN-B'}))
    page = await store.list_events(EventFilter('EIN-A'), limit=2, offset=1)
    assert [r.request_id for r in page] == ['PR-1', 'PR-0']
    assert page[0].request == {}
    assert await store.count_events(EventFilter('EIN-A', status='pending')) == 2
    indexes = collection.index_information()
    assert mongo_documents.RECENT_INDEX_NAME in indexes
    assert mongo_documents.STATUS_RECENT_INDEX_NAME in indexes
    plan = collection.find({'installation_id': 'EIN-A'}).sort(
        list(mongo_documents.NEWEST_FIRST)).limit(50).explain()
    assert mongo_documents.RECENT_INDEX_NAME in str(plan['queryPlanner']['winningPlan'])
