"""Both MongoDB backends written by several OS processes at once, and by processes killed
(SIGKILL) between two writes: afterwards every count equals the events stored, per
installation and status.

The server is the `mongodb_server` fixture's (MONGODB_URI, else a throwaway SecantusDB);
the Data API backend reaches it through the local Data API server in a process of its own.
"""
import asyncio
import multiprocessing
import os
import signal
import time
from contextlib import closing, contextmanager
from datetime import timedelta
from typing import Any, Dict, Iterator

import pytest
from pymongo import MongoClient

from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.storage import mongo_counts
from connect_mongodb_example.storage import mongo_documents as documents
from connect_mongodb_example.storage.base import EventFilter
from connect_mongodb_example.storage.mongo_schema import DATA_VERSION, INDEX_VERSION
from tests.storage import mongo_targets
from tests.storage.mongo_targets import DATABASE, counted, stored
from tests.support.concurrent_saves import INSTALLATION, save_in_processes
from tests.support.records import purchase_record

pytestmark = pytest.mark.mongodb
PROCESSES = 6
STATUSES = PURCHASE_REQUEST.statuses


@pytest.fixture(scope='module')
def database(mongodb_server):
    with closing(MongoClient(mongodb_server.admin_uri, tz_aware=True)) as client:
        yield client[DATABASE]


@contextmanager
def target_config(target: str, server: Any) -> Iterator[Dict[str, str]]:
    """The variables of `target` on a new collection, dropped afterwards."""
    collection = mongo_targets.new_collection()
    try:
        if target == 'dataapi':
            with mongo_targets.data_api_process(server) as url:
                yield mongo_targets.config(target, server, collection, url)
        else:
            yield mongo_targets.config(target, server, collection)
    finally:
        mongo_targets.drop(server, collection)


#: Two events of each status.
EVENTS = 2 * len(STATUSES)


def requests(purchase_request, count=EVENTS):
    return [purchase_request(f'PR-0000-0000-0000-{i:03d}', status=STATUSES[i % len(STATUSES)])
            for i in range(count)]


def assert_no_errors(outcomes):
    assert [outcome for outcome in outcomes if isinstance(outcome, str)] == []
    assert len(outcomes) == PROCESSES


@pytest.mark.parametrize('target', ['pymongo', 'motor', 'dataapi'])
def test_six_processes_deliver_the_same_events_at_once(
    mongodb_server, database, purchase_request, target,
):
    """Each event's first deliveries race in six processes, the other five deliveries are
    redeliveries: one document per event, delivered six times, counted once."""
    with target_config(target, mongodb_server) as settings:
        name = settings.get('MONGODB_COLLECTION') or settings['DATA_API_COLLECTION']
        outcomes = save_in_processes(PROCESSES, settings, requests(purchase_request))
        assert_no_errors(outcomes)
        events = list(database[name].find({}, {'_id': 0, 'delivery_count': 1,
                                                documents.COUNTING: 1}))
        assert [event['delivery_count'] for event in events] == [PROCESSES] * EVENTS
        assert not any(documents.COUNTING in event for event in events)
        assert counted(database, name) == stored(database, name) == [
            (INSTALLATION, status, 2) for status in sorted(STATUSES)]


@pytest.mark.parametrize('target', ['pymongo', 'dataapi'])
def test_six_processes_upgrade_a_first_version_collection_at_once(
    mongodb_server, database, purchase_request, target,
):
    """A collection the first version wrote, with events of several installations (one of
    them delivered again now): the processes meet it together, one migrates, all save."""
    with target_config(target, mongodb_server) as settings:
        name = settings.get('MONGODB_COLLECTION') or settings['DATA_API_COLLECTION']
        new = requests(purchase_request, 6)
        earlier = [purchase_record(new[0], installation={'id': INSTALLATION})] + [
            purchase_record(purchase_request(f'PR-9999-{i:03d}', status=status),
                            installation={'id': f'EIN-EARLIER-{i % 2}'})
            for i, status in enumerate(STATUSES * 2)]
        mongo_targets.write_first_version(database[name], earlier)

        outcomes = save_in_processes(PROCESSES, settings, new)

        assert_no_errors(outcomes)
        # The event stored before counts its earlier delivery too.
        assert sorted(counts[0] for counts in outcomes) == list(range(2, PROCESSES + 2)) or (
            mongodb_server.throwaway)  # see test_mongodb_integration: SecantusDB's read-back
        assert counted(database, name) == stored(database, name)
        assert len(stored(database, name)) == len(new) + 2 * len(STATUSES)
        schema = database[name + '_schema'].find_one({'_id': 'schema'})
        assert schema['data'] == DATA_VERSION
        indexes = database[name].index_information()
        if target == 'dataapi':
            # The Data API cannot create indexes: the first version's stay until the
            # driver backend (or an operator) replaces them.
            assert 'indexes' not in schema
            assert set(documents.RETIRED_INDEX_NAMES) <= set(indexes)
        else:
            assert schema['indexes'] == INDEX_VERSION
            assert not set(documents.RETIRED_INDEX_NAMES) & set(indexes)
        assert database[name + '_schema'].find_one({'_id': 'migration'}) is None


def _killed_before(step: str, settings: Dict[str, str], work: str, argument: Any) -> None:
    """In a process of its own: open a store, run `work`, and die (SIGKILL, no cleanup at
    all) when it reaches mongo_counts.`step`, the count's write."""
    def die(*args: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(mongo_counts, step, die)
    store = mongo_targets.new_store(settings)
    if work == 'save':
        asyncio.run(store.save(argument))
    else:
        asyncio.run(store.delete_events(limit=argument, installation_id='EIN-A'))


def run_killed(step: str, settings: Dict[str, str], work: str, argument: Any) -> None:
    context = multiprocessing.get_context('forkserver')
    process = context.Process(target=_killed_before, args=(step, settings, work, argument))
    process.start()
    process.join(timeout=120)
    assert process.exitcode == -signal.SIGKILL


async def fill(store, purchase_request, installation_id, count):
    for n in range(count):
        await store.save(purchase_record(
            purchase_request(f'PR-{installation_id}-{n:03d}', status=STATUSES[n % 3]),
            installation={'id': installation_id}))


def past_grace(monkeypatch) -> None:
    """Let the killed process's marker or lease be older than GRACE (a second, here)."""
    monkeypatch.setattr(mongo_counts, 'GRACE', timedelta(seconds=1))
    time.sleep(2.1)  # ObjectIds hold whole seconds


@pytest.mark.parametrize('target', ['pymongo', 'dataapi'])
async def test_a_deleter_killed_between_its_delete_and_its_count(
    mongodb_server, database, purchase_request, target, monkeypatch,
):
    with target_config(target, mongodb_server) as settings:
        name = settings.get('MONGODB_COLLECTION') or settings['DATA_API_COLLECTION']
        store = mongo_targets.new_store(settings)
        try:
            await fill(store, purchase_request, 'EIN-A', 12)
            await fill(store, purchase_request, 'EIN-B', 3)
            run_killed('take_off', settings, 'delete', 5)
            # Its first status's events are gone, and still counted.
            assert database[name].count_documents({'installation_id': 'EIN-A'}) < 12
            assert await store.count_events(EventFilter('EIN-A')) == 12
            past_grace(monkeypatch)
            # The next run (of the lifecycle job) repairs first, then deletes on, exact.
            assert await store.delete_events(limit=3, installation_id='EIN-A') == 3
            assert counted(database, name) == stored(database, name)
            assert await store.count_events(EventFilter('EIN-A')) == database[
                name].count_documents({'installation_id': 'EIN-A'})
            assert database[name + '_counts'].count_documents(
                {'_id': {'$regex': '^lease:'}}) == 0
        finally:
            await store.close()


@pytest.mark.parametrize('target', ['pymongo', 'dataapi'])
async def test_a_saver_killed_between_its_event_and_its_count(
    mongodb_server, database, purchase_request, target, monkeypatch,
):
    with target_config(target, mongodb_server) as settings:
        name = settings.get('MONGODB_COLLECTION') or settings['DATA_API_COLLECTION']
        store = mongo_targets.new_store(settings)
        try:
            await fill(store, purchase_request, 'EIN-A', 3)
            record = purchase_record(purchase_request('PR-KILLED', status='approved'),
                                     installation={'id': 'EIN-A'})
            run_killed('count_creation', settings, 'save', record)
            # Stored, marked as under way, and not counted.
            [event] = database[name].find({'request_id': 'PR-KILLED'})
            assert documents.COUNTING in event
            assert await store.count_events(EventFilter('EIN-A')) == 3
            past_grace(monkeypatch)
            assert await store.delete_events(limit=1, installation_id='EIN-NONE') == 0
            assert counted(database, name) == stored(database, name) == [
                ('EIN-A', 'approved', 2), ('EIN-A', 'failed', 1), ('EIN-A', 'pending', 1)]
            # Connect redelivers the event the killed process never answered: one more
            # delivery, no more count.
            assert await store.save(record) == 2
            assert await store.count_events(EventFilter('EIN-A')) == 4
        finally:
            await store.close()
