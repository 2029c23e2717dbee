"""The counts of both MongoDB backends when a write stops halfway: a save between its event
and its count, a delete between its events and taking them off, a recount racing writes.

Against a real server (the `mongodb_server` fixture), through the driver and through the
local Data API server over real connections. A stopped process is played in this one by a
write that fails where the process would have died; test_mongo_processes.py kills real ones.
"""
import asyncio
from contextlib import closing
from datetime import datetime, timedelta, timezone

import bson
import pytest
from pymongo import MongoClient

from connect_mongodb_example.errors import StorageUnavailable, within
from connect_mongodb_example.storage import mongo_counts
from connect_mongodb_example.storage import mongo_documents as documents
from connect_mongodb_example.storage.base import EventFilter
from tests.storage import mongo_targets
from tests.storage.mongo_targets import DATABASE, counted, stored
from tests.support.records import purchase_record

pytestmark = pytest.mark.mongodb
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
STATUSES = ('pending', 'approved', 'failed')
COUNT_CREATION, TAKE_OFF = mongo_counts.count_creation, mongo_counts.take_off
#: Long enough for a marker or lease made now to be older than a GRACE of one second
#: (ObjectIds hold whole seconds).
PAST_GRACE_SECONDS = 2.1


@pytest.fixture(scope='module')
def database(mongodb_server):
    with closing(MongoClient(mongodb_server.admin_uri, tz_aware=True)) as client:
        yield client[DATABASE]


@pytest.fixture(params=['pymongo', 'dataapi'])
async def make_store(request, mongodb_server):
    """Stores of one new collection through the target's backend, each as another process's."""
    async with mongo_targets.target_stores(request.param, mongodb_server) as make:
        yield make


@pytest.fixture
def short_grace(monkeypatch):
    monkeypatch.setattr(mongo_counts, 'GRACE', timedelta(seconds=1))


async def stopped(*args):
    raise StorageUnavailable('the process stopped here')


async def fill(store, purchase_request, installation_id, count):
    records = [purchase_record(
        purchase_request(f'PR-{installation_id}-{n:03d}', status=STATUSES[n % 3]),
        installation={'id': installation_id}, received_at=T0 + timedelta(seconds=n))
        for n in range(count)]
    for record in records:
        await store.save(record)
    return records


async def repair(store):
    """What the lifecycle job does first: a delete runs the sweep, and waits for it."""
    assert await store.delete_events(limit=1, installation_id='EIN-NOBODY') == 0


async def test_a_save_stopped_before_its_count_is_counted_by_the_next_sweep(
    make_store, database, purchase_request, monkeypatch, short_grace,
):
    store = make_store()
    await fill(store, purchase_request, 'EIN-A', 4)
    monkeypatch.setattr(mongo_counts, 'count_creation', stopped)
    lost = purchase_record(purchase_request('PR-LOST', status='approved'),
                           installation={'id': 'EIN-A'})
    assert await store.save(lost) == 1  # stored: the event is not lost, only its count
    monkeypatch.setattr(mongo_counts, 'count_creation', COUNT_CREATION)
    name = make_store.collection
    assert database[name].count_documents({documents.COUNTING: {'$exists': True}}) == 1
    assert await store.count_events(EventFilter('EIN-A')) == 4
    # Within GRACE the save might still be under way: nothing is recounted yet.
    await repair(make_store())
    assert await store.count_events(EventFilter('EIN-A', status='approved')) == 1
    await asyncio.sleep(PAST_GRACE_SECONDS)
    await repair(make_store())
    assert counted(database, name) == stored(database, name) == [
        ('EIN-A', 'approved', 2), ('EIN-A', 'failed', 1), ('EIN-A', 'pending', 2)]
    assert await store.count_events(EventFilter('EIN-A')) == 5
    assert database[name].count_documents({documents.COUNTING: {'$exists': True}}) == 0
    # A redelivery of it now counts nothing more.
    assert await store.save(lost) == 2
    assert await store.count_events(EventFilter('EIN-A')) == 5


async def test_a_read_repairs_too(make_store, database, purchase_request, monkeypatch,
                                  short_grace):
    store = make_store()
    monkeypatch.setattr(mongo_counts, 'count_creation', stopped)
    await fill(store, purchase_request, 'EIN-A', 3)
    monkeypatch.setattr(mongo_counts, 'count_creation', COUNT_CREATION)
    await asyncio.sleep(PAST_GRACE_SECONDS)
    reader = make_store()
    # A read answers with what the counts say, and starts the repair beside it.
    for _ in range(100):
        if await reader.count_events(EventFilter('EIN-A')) == 3:
            break
        await asyncio.sleep(0.1)
    assert counted(database, make_store.collection) == [
        ('EIN-A', 'approved', 1), ('EIN-A', 'failed', 1), ('EIN-A', 'pending', 1)]


async def test_a_delete_stopped_before_taking_off_is_recounted(
    make_store, database, purchase_request, monkeypatch, short_grace,
):
    store = make_store()
    await fill(store, purchase_request, 'EIN-A', 9)
    await fill(store, purchase_request, 'EIN-B', 3)
    monkeypatch.setattr(mongo_counts, 'take_off', stopped)
    with pytest.raises(StorageUnavailable, match='stopped here'):
        await store.delete_events(limit=4, installation_id='EIN-A')
    monkeypatch.setattr(mongo_counts, 'take_off', TAKE_OFF)
    name = make_store.collection
    assert database[name].count_documents({'installation_id': 'EIN-A'}) < 9
    [lease] = database[name + '_counts'].find({'_id': {'$regex': '^lease:'}})
    assert lease['installations'] == ['EIN-A']
    await asyncio.sleep(PAST_GRACE_SECONDS)
    await repair(make_store())
    assert counted(database, name) == stored(database, name)
    assert await store.count_events(EventFilter('EIN-A')) == database[name].count_documents(
        {'installation_id': 'EIN-A'})
    assert database[name + '_counts'].count_documents({'_id': {'$regex': '^lease:'}}) == 0
    # The purge goes on from there, exact.
    while await store.delete_events(limit=4, installation_id='EIN-A'):
        pass
    assert counted(database, name) == stored(database, name) == [
        ('EIN-B', 'approved', 1), ('EIN-B', 'failed', 1), ('EIN-B', 'pending', 1)]


async def test_a_recount_gives_up_while_a_save_or_a_delete_is_under_way(
    make_store, database, purchase_request,
):
    store = make_store()
    await fill(store, purchase_request, 'EIN-A', 3)
    cols = await store._ready()
    name = make_store.collection
    # A save under way: its event is marked, its count not yet added.
    database[name].update_one({'request_id': 'PR-EIN-A-000'},
                              {'$set': {documents.COUNTING: bson.ObjectId()}})
    assert not await mongo_counts.recount_installation(cols, 'EIN-A')
    database[name].update_many({}, {'$unset': {documents.COUNTING: ''}})
    # A delete under way: its lease names the installation.
    lease = {'_id': mongo_counts.LEASE_PREFIX + str(bson.ObjectId()),
             'installations': ['EIN-A'], 'counts': []}
    database[name + '_counts'].insert_one(lease)
    assert not await mongo_counts.recount_installation(cols, 'EIN-A')
    assert await mongo_counts.recount_installation(cols, 'EIN-B')  # another one's
    database[name + '_counts'].delete_one({'_id': lease['_id']})
    assert await mongo_counts.recount_installation(cols, 'EIN-A')
    assert counted(database, name) == stored(database, name)


async def test_a_recount_keeps_a_count_changed_while_it_counted(
    make_store, database, purchase_request, monkeypatch,
):
    """A save counts its event between the recount's reading of the counts and its setting
    them: the recount does not overwrite that count with its own, older, number."""
    store = make_store()
    await fill(store, purchase_request, 'EIN-A', 3)
    cols = await store._ready()
    name = make_store.collection
    late = purchase_record(purchase_request('PR-LATE', status='pending'),
                           installation={'id': 'EIN-A'})
    counting = cols.events.aggregate

    async def racing(pipeline):
        found = await counting(pipeline)
        await store.save(late)  # after the events were counted, before the counts are set
        return found

    monkeypatch.setattr(cols.events, 'aggregate', racing)
    assert not await mongo_counts.recount_installation(cols, 'EIN-A')
    monkeypatch.undo()
    assert counted(database, name) == stored(database, name) == [
        ('EIN-A', 'approved', 1), ('EIN-A', 'failed', 1), ('EIN-A', 'pending', 2)]


async def test_a_save_cancelled_by_its_timeout_still_counts_its_event(
    make_store, database, purchase_request, monkeypatch,
):
    store = make_store()
    await store.count_events(EventFilter('EIN-A'))  # the collection is ready
    original = mongo_counts.count_creation

    async def slow(*args):
        await asyncio.sleep(2)
        await original(*args)

    monkeypatch.setattr(mongo_counts, 'count_creation', slow)
    record = purchase_record(purchase_request(), installation={'id': 'EIN-A'})
    # The event is stored well within the time; its count is still under way when it ends.
    with pytest.raises(StorageUnavailable, match='no answer within'):
        await within(store.save(record), 1.5, store.describe())
    assert counted(database, make_store.collection) == []
    for _ in range(50):
        if counted(database, make_store.collection):
            break
        await asyncio.sleep(0.1)
    assert counted(database, make_store.collection) == [('EIN-A', 'pending', 1)]
    await asyncio.sleep(0.2)  # and its marker removed, right after
    assert database[make_store.collection].count_documents(
        {documents.COUNTING: {'$exists': True}}) == 0


async def test_after_an_upgrade_one_more_recount_counts_what_old_replicas_wrote(
    make_store, database, purchase_request,
):
    name = make_store.collection
    earlier = [purchase_record(purchase_request(f'PR-{n}'), installation={'id': 'EIN-A'})
               for n in range(3)]
    mongo_targets.write_first_version(database[name], earlier[:2])
    store = make_store()
    assert await store.count_events(EventFilter('EIN-A')) == 2
    # A replica still running the previous version writes an event: no count.
    mongo_targets.first_version_documents(database[name], earlier[2:])
    assert await store.count_events(EventFilter('EIN-A')) == 2
    schema = database[name + '_schema']
    assert schema.find_one({'_id': 'schema'})['recount_after'] > datetime.now(timezone.utc)
    # Once GRACE has passed (the old replicas are gone), the next sweep recounts.
    schema.update_one({'_id': 'schema'}, {'$set': {'recount_after': T0}})
    await repair(make_store())
    assert await store.count_events(EventFilter('EIN-A')) == 3
    assert 'recount_after' not in schema.find_one({'_id': 'schema'})
