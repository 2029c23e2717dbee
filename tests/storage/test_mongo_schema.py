"""The schema version of the MongoDB collections and its migration lock, against a real
server through both backends: a lock left by a stopped process expires and is taken over,
a live one is waited for, and a migration that failed is run again by the next use."""
import asyncio
from contextlib import closing
from datetime import datetime, timedelta, timezone

import pytest
from pymongo import MongoClient

from connect_mongodb_example.errors import StorageUnavailable
from connect_mongodb_example.storage import mongo_counts, mongo_schema
from connect_mongodb_example.storage.base import EventFilter
from tests.storage import mongo_targets
from tests.storage.mongo_targets import DATABASE, counted, stored
from tests.support.records import purchase_record

pytestmark = pytest.mark.mongodb


@pytest.fixture(scope='module')
def database(mongodb_server):
    with closing(MongoClient(mongodb_server.admin_uri, tz_aware=True)) as client:
        yield client[DATABASE]


@pytest.fixture(params=['pymongo', 'dataapi'])
async def make_store(request, mongodb_server):
    async with mongo_targets.target_stores(request.param, mongodb_server) as make:
        make.target = request.param
        yield make


def current(target):
    """The schema document once the target's backend migrated."""
    versions = {'data': mongo_schema.DATA_VERSION}
    if target != 'dataapi':
        versions['indexes'] = mongo_schema.INDEX_VERSION
    return versions


def schema_of(database, make_store):
    found = database[make_store.collection + '_schema'].find_one({'_id': 'schema'}) or {}
    return {key: found[key] for key in ('data', 'indexes') if key in found}


async def test_a_lock_left_by_a_stopped_migration_is_taken_over(
    make_store, database, purchase_request,
):
    locks = database[make_store.collection + '_schema']
    locks.insert_one({'_id': 'migration', 'owner': 'a process that died',
                      'expires': datetime.now(timezone.utc) - timedelta(seconds=1)})
    store = make_store()
    record = purchase_record(purchase_request(), installation={'id': 'EIN-A'})
    assert await store.save(record) == 1
    assert schema_of(database, make_store) == current(make_store.target)
    assert locks.find_one({'_id': 'migration'}) is None
    assert await store.count_events(EventFilter('EIN-A')) == 1


async def test_a_live_migration_is_waited_for(make_store, database, purchase_request,
                                              monkeypatch):
    monkeypatch.setattr(mongo_schema, 'POLL_SECONDS', 0.05)
    locks = database[make_store.collection + '_schema']
    locks.insert_one({'_id': 'migration', 'owner': 'another process',
                      'expires': datetime.now(timezone.utc) + timedelta(minutes=1)})
    store = make_store()
    record = purchase_record(purchase_request(), installation={'id': 'EIN-A'})
    saving = asyncio.ensure_future(store.save(record))
    await asyncio.sleep(1)
    assert not saving.done()
    assert database[make_store.collection].count_documents({}) == 0
    # The other process finishes: its versions are recorded, its lock removed.
    locks.insert_one({'_id': 'schema', **current(make_store.target)})
    locks.delete_one({'_id': 'migration'})
    assert await asyncio.wait_for(saving, 10) == 1
    # It migrated an empty collection: the counts it made are the events stored since.
    assert counted(database, make_store.collection) == stored(database, make_store.collection)


async def test_a_waiting_save_gives_up_with_its_timeout_and_the_next_one_passes(
    make_store, database, purchase_request,
):
    """The migration goes on when the save that started it times out (a migration may take
    longer than one save may wait); a later save finds it done."""
    name = make_store.collection
    earlier = [purchase_record(purchase_request(f'PR-{n}'), installation={'id': 'EIN-A'})
               for n in range(3)]
    mongo_targets.write_first_version(database[name], earlier)
    store = make_store()
    original = mongo_counts.recount_all

    async def slow(cols):
        await asyncio.sleep(1.5)
        return await original(cols)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mongo_counts, 'recount_all', slow)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(store.count_events(EventFilter('EIN-A')), 0.5)
        for _ in range(100):
            if schema_of(database, make_store) == current(make_store.target):
                break
            await asyncio.sleep(0.1)
    assert await store.count_events(EventFilter('EIN-A')) == 3


async def test_a_failed_migration_is_run_again_by_the_next_use(
    make_store, database, purchase_request, monkeypatch,
):
    store = make_store()

    async def failing(cols):
        raise StorageUnavailable('the server went away')

    monkeypatch.setattr(mongo_counts, 'recount_all', failing)
    record = purchase_record(purchase_request(), installation={'id': 'EIN-A'})
    with pytest.raises(StorageUnavailable, match='went away'):
        await store.save(record)
    assert database[make_store.collection + '_schema'].find_one({'_id': 'migration'}) is None
    monkeypatch.undo()
    assert await store.save(record) == 1
    assert schema_of(database, make_store) == current(make_store.target)
