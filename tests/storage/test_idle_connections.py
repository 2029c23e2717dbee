"""MongoDB and the Data API follow the load too (the SQL pool: test_sql_pool.py): connections
that rest longer than STORAGE_IDLE_SECONDS are closed, seen from the sockets and the server."""
import asyncio
import uuid

import pytest
from pymongo.uri_parser import parse_uri

from connect_mongodb_example.storage.dataapi import DataApiEventStore
from connect_mongodb_example.storage.dataapi_client import DataApiClient
from connect_mongodb_example.storage.mongodb import MongoEventStore, close_client, new_client
from connect_mongodb_example.variables import ConfigReader
from localdev.dataapi_server import DataApiServer
from tests.support.connections import established_to, settled
from tests.support.mongo_server import TEST_DATABASES

#: The driver's monitoring connections to one server (the monitor, and the round-trip-time
#: monitor where the server streams its state): open while the client is, whatever the load.
MONGODB_MONITORS = 2
DATA_API_KEY = 'idle-test-key'


@pytest.mark.mongodb
@pytest.mark.parametrize('driver', ['pymongo', 'motor'])
async def test_the_mongodb_pool_closes_resting_connections(mongodb_server, driver):
    nodes = parse_uri(mongodb_server.uri)['nodelist']
    if len(nodes) != 1:
        pytest.skip('counts the connections to one server; MONGODB_URI names several')
    port = nodes[0][1]
    before = established_to(port)
    client = new_client(MongoEventStore.parse_settings(ConfigReader({
        'MONGODB_URI': mongodb_server.uri, 'MONGODB_DRIVER': driver,
        'STORAGE_IDLE_SECONDS': '1',
    })))
    collection = client[TEST_DATABASES[1]][f'idle_{uuid.uuid4().hex[:12]}']
    try:
        await asyncio.gather(*(collection.insert_one({'n': n}) for n in range(50)))
        assert established_to(port) - before > MONGODB_MONITORS
        quiet = await asyncio.to_thread(
            settled, lambda: established_to(port), before + MONGODB_MONITORS)
        assert quiet - before <= MONGODB_MONITORS
        # Reopened on demand.
        assert await collection.count_documents({}) == 50
    finally:
        await collection.drop()
        await close_client(client)


@pytest.mark.parametrize(('idle', 'connections'), [
    pytest.param('0.3', 2, id='expired-and-replaced'),
    pytest.param('0', 1, id='0-keeps-it'),
])
async def test_a_data_api_connection_that_rested_longer_is_not_reused(idle, connections):
    """httpx drops a connection that rested longer than the setting when the client is next
    used (it has no timer of its own): the next request comes on a new connection, and the
    old one is closed; the server counts the connections it accepted."""
    async with DataApiServer(api_key=DATA_API_KEY) as server:
        settings = DataApiEventStore.parse_settings(ConfigReader({
            'DATA_API_URL': server.base_url, 'DATA_API_KEY': DATA_API_KEY,
            'STORAGE_IDLE_SECONDS': idle,
        }))
        client = DataApiClient(settings, 'dataapi (test)')
        try:
            await client.post('findOne', {'filter': {'key': 'none'}})
            await asyncio.sleep(0.6)
            await client.post('findOne', {'filter': {'key': 'none'}})
            assert len(server.connections) == connections
            assert established_to(server.port) == 1
        finally:
            await client.close()
