"""The MongoDB driver backend against a real server, with both drivers.

The server is MONGODB_URI when set (the GitHub workflow's mongo service, the reference),
e.g. `MONGODB_URI=mongodb://localhost:27017 .venv/bin/pytest -m mongodb`; otherwise a
throwaway SecantusDB with authentication on (see tests/support/mongo_server.py). Every test
writes to a collection of its own, dropped afterwards.
"""
import asyncio
import copy
import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pymongo import MongoClient

from connect_mongodb_example.errors import ConfigurationError, InvalidRequest
from connect_mongodb_example.installation_record import (
    INSTALLED,
    UNINSTALLED,
    InstallationRecord,
)
from connect_mongodb_example.storage import mongo_documents as documents
from connect_mongodb_example.storage.base import EventFilter, PageCursor, newest_first
from connect_mongodb_example.storage.mongo_documents import KEY_INDEX_NAME, REQUEST_INDEX_NAME
from connect_mongodb_example.storage.mongo_schema import DATA_VERSION, INDEX_VERSION
from connect_mongodb_example.storage.mongodb import MongoEventStore
from connect_mongodb_example.variables import ConfigReader
from tests.storage.mongo_targets import counted, stored, write_first_version
from tests.support.records import purchase_record

pytestmark = pytest.mark.mongodb
DATABASE = 'connect_events_tests'
STATUSES = ('pending', 'approved', 'failed')


@pytest.fixture(scope='module')
def server(mongodb_server):
    client = MongoClient(mongodb_server.admin_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    yield client
    client.close()


@pytest.fixture
def collection(server):
    name = f'events_{uuid.uuid4().hex[:12]}'
    yield server[DATABASE][name]
    for suffix in ('', '_counts', '_installations', '_schema'):
        server[DATABASE].drop_collection(name + suffix)


@pytest.fixture(params=['pymongo', 'motor'])
async def make_store(request, collection, mongodb_server):
    stores = []

    def make() -> MongoEventStore:
        store = MongoEventStore(MongoEventStore.parse_settings(ConfigReader({
            'MONGODB_URI': mongodb_server.uri, 'MONGODB_DATABASE': DATABASE,
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
    make_store, collection, purchase_request, mongodb_server,
):
    """Two processes (two clients) deliver the same new event at once: the unique index
    makes one upsert lose with a duplicate key error, which the store retries."""
    first, second = make_store(), make_store()
    record = purchase_record(purchase_request())
    counts = await asyncio.gather(*(
        store.save(record) for _ in range(10) for store in (first, second)
    ))
    if mongodb_server.throwaway:
        # Differs from MongoDB: SecantusDB applies every racing upsert but sometimes returns
        # no document, so the store reads the count back and two saves may report the same
        # (later) count. The stored count below is exact on both.
        assert set(counts) <= set(range(1, 21))
    else:
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


async def test_wrong_password_is_a_configuration_problem(
    mongodb_server, collection, purchase_request,
):
    uri = mongodb_server.uri
    if '@' not in uri:
        pytest.skip('MONGODB_URI has no credentials: the server does not check passwords')
    scheme, rest = uri.split('://', 1)
    userinfo, host = rest.rsplit('@', 1)
    user = userinfo.split(':', 1)[0]
    store = MongoEventStore(MongoEventStore.parse_settings(ConfigReader({
        'MONGODB_URI': f'{scheme}://{user}:wrong-password-123@{host}',
        'MONGODB_DATABASE': DATABASE, 'MONGODB_COLLECTION': collection.name,
    })))
    try:
        with pytest.raises(ConfigurationError) as caught:
            await store.save(purchase_record(purchase_request()))
    finally:
        await store.close()
    assert caught.value.variable == 'MONGODB_URI'
    assert 'code 18' in str(caught.value)
    assert 'wrong-password-123' not in str(caught.value)
    assert collection.count_documents({}) == 0


async def test_a_user_without_write_access_is_a_configuration_problem(
    mongodb_server, server, purchase_request,
):
    """The application user of the throwaway server may write only its own databases."""
    if not mongodb_server.throwaway:
        pytest.skip('needs a user whose roles are known: the throwaway server')
    forbidden = 'connect_events_forbidden'
    store = MongoEventStore(MongoEventStore.parse_settings(ConfigReader({
        'MONGODB_URI': mongodb_server.uri, 'MONGODB_DATABASE': forbidden,
    })))
    try:
        with pytest.raises(ConfigurationError, match=r'not authorised \(code 13\)') as caught:
            await store.save(purchase_record(purchase_request()))
    finally:
        await store.close()
    assert caught.value.variable == 'MONGODB_URI'
    assert server[forbidden]['events'].count_documents({}) == 0


T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def fill(store, purchase_request, installation_id, count, *, start=0, statuses=STATUSES,
               seconds=lambda n: n // 3):
    """`count` events of the installation, several per second (so keys break the ties)."""
    records = []
    for n in range(start, start + count):
        record = purchase_record(
            purchase_request(f'PR-{n:04d}', status=statuses[n % len(statuses)]),
            installation={'id': installation_id} if installation_id else None,
            received_at=at(seconds(n)))
        await store.save(record)
        records.append(record)
    return records


async def test_pages_and_counts_use_the_read_indexes(store, collection, purchase_request):
    for index, status in enumerate(('pending', 'approved', 'pending')):
        await store.save(purchase_record(purchase_request(f'PR-{index}', status=status),
                                         installation={'id': 'EIN-A'}, received_at=at(index)))
    await store.save(purchase_record(purchase_request('PR-9'), installation={'id': 'EIN-B'}))
    page = await store.list_events(EventFilter('EIN-A'), limit=2, offset=1)
    assert [r.request_id for r in page] == ['PR-1', 'PR-0']
    assert page[0].request == {}
    assert await store.count_events(EventFilter('EIN-A', status='pending')) == 2
    indexes = collection.index_information()
    assert {name for _, options in documents.EVENT_INDEXES
            for name in [options['name']]} <= set(indexes)
    assert indexes[documents.COUNTING_INDEX_NAME]['sparse'] is True
    assert not set(documents.RETIRED_INDEX_NAMES) & set(indexes)
    # A cursor page reads the installation's index from the cursor's place on. (SecantusDB
    # then sorts what it read; MongoDB's index gives the order, and the scan stops at the
    # limit.)
    cursor = PageCursor.of(page[0])
    query = documents.page_filter(EventFilter('EIN-A'), cursor, None)
    plan = collection.find(query).sort(list(documents.NEWEST_FIRST)).hint(
        documents.RECEIVED_INDEX).limit(50).explain()
    assert documents.RECEIVED_INDEX_NAME in str(plan['queryPlanner']['winningPlan'])
    assert 'COLLSCAN' not in str(plan['queryPlanner']['winningPlan'])
    assert [r.request_id for r in await store.list_events(
        EventFilter('EIN-A'), limit=5, after=cursor)] == ['PR-0']


async def test_cursor_pages_walk_both_ways(store, purchase_request):
    mine = await fill(store, purchase_request, 'EIN-A', 20)
    await fill(store, purchase_request, 'EIN-B', 5, start=100)
    expected = [r.key for r in sorted(mine, key=newest_first, reverse=True)]
    where = EventFilter('EIN-A')
    pages, after = [], None
    while True:
        page = await store.list_events(where, limit=6, after=after)
        if not page:
            break
        pages.append([r.key for r in page])
        after = PageCursor.of(page[-1])
    assert [key for page in pages for key in page] == expected
    assert [len(page) for page in pages] == [6, 6, 6, 2]
    # Back from the last page, one page at a time, to the first.
    back, before = [], PageCursor.of((await store.list_events(where, limit=1, offset=19))[0])
    while True:
        page = await store.list_events(where, limit=6, before=before)
        if not page:
            break
        back.insert(0, [r.key for r in page])
        before = PageCursor.of(page[0])
    assert [key for page in back for key in page] == expected[:-1]
    pending = await store.list_events(EventFilter('EIN-A', status='pending'), limit=3,
                                      after=PageCursor.of(mine[10]), full=True)
    older_pending = [r for r in mine
                     if r.status == 'pending' and newest_first(r) < newest_first(mine[10])]
    assert [r.key for r in pending] == [
        r.key for r in sorted(older_pending, key=newest_first, reverse=True)][:3]
    assert all(r.request for r in pending)


async def test_counts_follow_first_deliveries_not_redeliveries(
    store, collection, purchase_request,
):
    records = await fill(store, purchase_request, 'EIN-A', 7)
    await fill(store, purchase_request, 'EIN-B', 2, start=50)
    await fill(store, purchase_request, None, 2, start=90)
    for record in records[:3]:
        await store.save(record)  # redeliveries count nothing new
    database = collection.database
    assert counted(database, collection.name) == stored(database, collection.name) == [
        ('EIN-A', 'approved', 2), ('EIN-A', 'failed', 2), ('EIN-A', 'pending', 3),
        ('EIN-B', 'failed', 1), ('EIN-B', 'pending', 1)]
    assert [await store.count_events(EventFilter('EIN-A', status=status))
            for status in (None, *STATUSES)] == [7, 3, 2, 2]
    assert await store.count_events(EventFilter('EIN-A', request_id='PR-0001')) == 1
    # Every save finished its count: no marker is left.
    assert collection.count_documents({documents.COUNTING: {'$exists': True}}) == 0


async def test_installation_changes_from_two_clients_end_with_the_latest(make_store):
    first, second = make_store(), make_store()
    changes = [InstallationRecord('EIN-A', (INSTALLED, UNINSTALLED)[minute % 2],
                                  T0 + timedelta(minutes=minute), account_id='VA-1')
               for minute in range(20)]
    random.Random(5).shuffle(changes)
    await asyncio.gather(*(store.save_installation(change)
                           for change in changes for store in (first, second)))
    latest = await second.get_installation('EIN-A')
    assert latest.changed_at == T0 + timedelta(minutes=19)
    assert latest.status == UNINSTALLED
    assert await first.list_installations() == [latest]


async def test_purges_and_retention_keep_the_counts_exact(
    store, collection, purchase_request,
):
    await fill(store, purchase_request, 'EIN-A', 12)
    await fill(store, purchase_request, 'EIN-B', 9, start=100, seconds=lambda n: n - 60)
    await fill(store, purchase_request, None, 3, start=200, seconds=lambda n: n - 200)
    batches = []
    while (deleted := await store.delete_events(limit=5, installation_id='EIN-A')):
        batches.append(deleted)
    assert batches == [5, 5, 2]
    assert await store.count_events(EventFilter('EIN-A')) == 0
    # Retention across installations, through the index it creates on first use.
    assert await store.delete_events(limit=100, received_before=at(45)) == 5 + 3
    assert documents.RETENTION_INDEX_NAME in collection.index_information()
    database = collection.database
    assert counted(database, collection.name) == stored(database, collection.name) == [
        ('EIN-B', 'approved', 1), ('EIN-B', 'failed', 1), ('EIN-B', 'pending', 2)]
    assert collection.count_documents({'installation_id': None}) == 0


async def test_two_clients_purging_at_once_delete_each_event_once(
    make_store, collection, purchase_request,
):
    first, second = make_store(), make_store()
    await fill(first, purchase_request, 'EIN-A', 30)
    deleted = []

    async def job(store):
        while (count := await store.delete_events(limit=4, installation_id='EIN-A')):
            deleted.append(count)

    await asyncio.gather(job(first), job(second))
    assert sum(deleted) == 30
    assert collection.count_documents({}) == 0
    assert await second.count_events(EventFilter('EIN-A')) == 0
    assert counted(collection.database, collection.name) == []


async def test_what_a_caller_sends_never_raises_a_driver_error(store, purchase_request):
    await fill(store, purchase_request, 'EIN-A', 3)
    with pytest.raises(InvalidRequest, match='offset'):
        await store.list_events(EventFilter('EIN-A'), limit=5, offset=2 ** 63)
    assert len(await store.list_events(EventFilter('EIN-A'), limit=5, offset=2 ** 63 - 1)) == 0
    for odd in ('\ud800', 'PR-\x00', 'x' * 10_000, '$where', 'a.b'):
        assert await store.list_events(EventFilter('EIN-A', request_id=odd), limit=5) == []
        assert await store.count_events(EventFilter(odd)) == 0
        assert await store.find(odd) == []
        assert await store.get_installation(odd) is None
    assert await store.list_events(EventFilter('EIN-A'), limit=5,
                                   after=PageCursor(T0, '\udfff')) == []


async def test_a_first_version_collection_is_migrated(make_store, collection, purchase_request):
    earlier = [purchase_record(purchase_request(f'PR-{n}', status=STATUSES[n % 3]),
                               installation={'id': f'EIN-{n % 2}'}, received_at=at(n))
               for n in range(7)]
    write_first_version(collection, earlier)
    store = make_store()
    # A redelivery of an event stored before the upgrade counts nothing new.
    assert await store.save(earlier[0]) == 2
    indexes = collection.index_information()
    assert not set(documents.RETIRED_INDEX_NAMES) & set(indexes)
    assert documents.RECEIVED_INDEX_NAME in indexes
    database = collection.database
    assert counted(database, collection.name) == stored(database, collection.name) == [
        ('EIN-0', 'approved', 1), ('EIN-0', 'failed', 1), ('EIN-0', 'pending', 2),
        ('EIN-1', 'approved', 1), ('EIN-1', 'failed', 1), ('EIN-1', 'pending', 1)]
    schema = database[collection.name + '_schema'].find_one({'_id': 'schema'})
    assert (schema['indexes'], schema['data']) == (INDEX_VERSION, DATA_VERSION)
    # Events stored before: replicas of the previous version may still write, so one more
    # recount is due once they are gone.
    assert schema['recount_after'] > datetime.now(timezone.utc)
    assert await store.count_events(EventFilter('EIN-0')) == 4


async def test_installations_whose_ids_share_a_beginning_have_their_own_counts(
    store, purchase_request,
):
    """The counts of one installation are read as one `_id` range: no other's falls in it,
    whatever the ids hold (as the server orders strings)."""
    ids = ['EIN-A', 'EIN-A"', 'EIN-A,', 'EIN-AB', 'EIN-A\\', 'EIN-Ä', 'EIN-A\x00']
    for number, installation_id in enumerate(ids):
        await fill(store, purchase_request, installation_id, number + 1, start=10 * number)
    assert [await store.count_events(EventFilter(installation_id)) for installation_id in ids] \
        == list(range(1, len(ids) + 1))
