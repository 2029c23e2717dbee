"""Changed variables: the store of the old settings is closed once nothing uses it.

Every change of a variable (Apply Changes in the portal) gives the installation a new store;
the old one must not keep its pool open for the life of the process.
"""
import asyncio

import pytest
from pymongo import MongoClient

from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import get_store, in_use, stores_for
from tests.support.connections import established_to, settled
from tests.support.delivery import deliver, open_stores
from tests.support.fake_store import FakeSettings
from tests.support.postgres import run_sql

CHANGES = 50


async def until(condition) -> None:
    """Closing a superseded store happens in the background: wait for it."""
    async def poll():
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 10)


async def deliver_after_each_change(configs, purchase_request, installation, logger):
    for number, config in enumerate(configs):
        request = purchase_request(f'PR-0000-0000-0000-{number:03d}')
        response = await deliver(request, config, logger, installation)
        assert response.status == 'success'


@pytest.mark.postgres
async def test_fifty_changes_leave_one_postgresql_pool(
    postgres_url, purchase_request, installation, logger,
):
    # application_name tells the stores' connections apart in pg_stat_activity.
    configs = [{'DATABASE_URL': f'{postgres_url}?application_name=change{number}',
                'DATABASE_POOL_SIZE': '4'} for number in range(CHANGES)]
    await deliver_after_each_change(configs, purchase_request, installation, logger)

    database = postgres_url.rsplit('/', 1)[1]

    def connections():
        return run_sql(postgres_url, 'SELECT application_name FROM pg_stat_activity '
                                     'WHERE datname = %s AND pid <> pg_backend_pid()',
                       (database,))

    await asyncio.to_thread(settled, lambda: len(connections()), 1)
    assert connections() == [(f'change{CHANGES - 1}',)]
    assert len(open_stores()) == 1
    assert run_sql(postgres_url, 'SELECT count(*) FROM connect_events') == [(CHANGES,)]


@pytest.mark.mongodb
async def test_fifty_changes_leave_one_mongodb_client(
    mongodb_server, purchase_request, installation, logger,
):
    collection = 'events_superseded'
    configs = [{'STORAGE_BACKENDS': 'mongodb', 'MONGODB_URI': mongodb_server.uri,
                'MONGODB_DATABASE': 'connect_events_tests', 'MONGODB_COLLECTION': collection,
                'MONGODB_TIMEOUT_MS': str(5000 + number)} for number in range(CHANGES)]
    with MongoClient(mongodb_server.admin_uri) as admin:
        def current() -> int:
            return admin.admin.command('serverStatus')['connections']['current']

        admin[configs[0]['MONGODB_DATABASE']].drop_collection(collection)
        before = current()
        try:
            await deliver_after_each_change(configs[:1], purchase_request, installation,
                                            logger)
            one_client = current() - before
            await deliver_after_each_change(configs, purchase_request, installation, logger)
            after = await asyncio.to_thread(settled, current, before + one_client)
            stored = admin[configs[0]['MONGODB_DATABASE']][collection].count_documents({})
        finally:
            admin[configs[0]['MONGODB_DATABASE']].drop_collection(collection)
    assert one_client > 0  # the measure sees the store's connections
    assert after - before <= one_client
    assert len(open_stores()) == 1
    assert stored == CHANGES


async def test_fifty_changes_leave_one_data_api_pool(purchase_request, installation, logger):
    from localdev.dataapi_server import DataApiServer

    async with DataApiServer(api_key='k') as server:
        configs = [{'STORAGE_BACKENDS': 'dataapi', 'DATA_API_URL': server.base_url,
                    'DATA_API_KEY': 'k', 'DATA_API_TIMEOUT_SECONDS': str(5 + number)}
                   for number in range(CHANGES)]
        await deliver_after_each_change(configs, purchase_request, installation, logger)
        # The client ends of open connections (their remote port is the server's).
        assert await asyncio.to_thread(settled, lambda: established_to(server.port), 1) <= 1
        assert len(open_stores()) == 1
        assert server.collection('connect_events', 'events').count_documents({}) == CHANGES


async def test_a_store_another_installation_uses_stays_open(fake_backend):
    old, new = FakeSettings('old'), FakeSettings('new')
    store = get_store(fake_backend, old, 'EIN-A')
    assert get_store(fake_backend, old, 'EIN-B') is store
    replacement = get_store(fake_backend, new, 'EIN-A')
    async with in_use([replacement]):
        pass
    assert store in open_stores()
    get_store(fake_backend, new, 'EIN-B')
    async with in_use([replacement]):
        pass
    await until(lambda: store.closed)
    assert open_stores() == [replacement]


async def test_a_superseded_store_closes_only_after_its_writes(fake_backend):
    old = get_store(fake_backend, FakeSettings('old'), 'EIN-A')
    writing = asyncio.Event()
    finish = asyncio.Event()

    async def slow_write():
        async with in_use([old]):
            writing.set()
            await finish.wait()
            assert not old.closed

    write = asyncio.create_task(slow_write())
    await writing.wait()
    new = get_store(fake_backend, FakeSettings('new'), 'EIN-A')
    async with in_use([new]):
        pass
    assert old in open_stores()
    finish.set()
    await write
    await until(lambda: old.closed)
    assert open_stores() == [new]


async def test_reverting_a_change_before_the_close_keeps_the_store(fake_backend):
    settings = load_settings({'STORAGE_BACKENDS': 'fake'})
    [first] = stores_for(settings, 'EIN-A')
    get_store(fake_backend, FakeSettings('other'), 'EIN-A')
    [again] = stores_for(settings, 'EIN-A')
    async with in_use([again]):
        pass
    assert again is first
    assert open_stores() == [first]
