"""The MongoDB-family stores the tests run against real parts, and what a test reads of a
collection directly.

Targets: the driver backend with either driver, and the Data API backend through the local
server (over real HTTP connections), its data in the same MongoDB server. The server is the
`mongodb_server` fixture's: MONGODB_URI when set, else a throwaway SecantusDB.
"""
import os
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager, closing, contextmanager
from typing import Any, AsyncIterator, Dict, Iterable, Iterator, List, Tuple

from pymongo import MongoClient

from connect_mongodb_example.event_record import STORED_FIELDS, EventRecord
from connect_mongodb_example.storage import BACKENDS
from connect_mongodb_example.storage.base import EventStore
from connect_mongodb_example.storage.mongo_store import collection_names
from connect_mongodb_example.variables import ConfigReader
from tests.support.mongo_server import MongoServer

DATABASE = 'connect_events_tests'
DATA_API_KEY = 'mongo-targets-key'
TARGETS = ('pymongo', 'motor', 'dataapi')

#: The indexes the first version created (before schema versions were recorded).
FIRST_VERSION_INDEXES = (
    ([('key', 1)], {'name': 'connect_events_idempotency_key_uniq', 'unique': True,
                    'sparse': True}),
    ([('request_id', 1), ('installation_id', 1)],
     {'name': 'connect_events_request_installation_idx'}),
    ([('installation_id', 1), ('last_received_at', -1), ('key', 1)],
     {'name': 'connect_events_installation_recent_idx'}),
    ([('installation_id', 1), ('status', 1), ('last_received_at', -1), ('key', 1)],
     {'name': 'connect_events_installation_status_recent_idx'}),
)


def new_collection() -> str:
    return f'events_{uuid.uuid4().hex[:12]}'


def config(target: str, server: MongoServer, collection: str, data_api_url: str = '',
           ) -> Dict[str, str]:
    """The variables of `target` on `collection` (for the Data API: at `data_api_url`)."""
    if target == 'dataapi':
        return {'STORAGE_BACKENDS': 'dataapi', 'DATA_API_URL': data_api_url,
                'DATA_API_KEY': DATA_API_KEY, 'DATA_API_DATABASE': DATABASE,
                'DATA_API_COLLECTION': collection}
    return {'STORAGE_BACKENDS': 'mongodb', 'MONGODB_URI': server.uri,
            'MONGODB_DATABASE': DATABASE, 'MONGODB_COLLECTION': collection,
            'MONGODB_DRIVER': target}


def new_store(settings: Dict[str, str]) -> EventStore:
    """A store of its own, as another process would have (not the registry's shared one)."""
    backend = BACKENDS[settings['STORAGE_BACKENDS']]
    return backend(backend.parse_settings(ConfigReader(settings)))


@asynccontextmanager
async def target_stores(target: str, server: MongoServer) -> AsyncIterator[Any]:
    """`make()` makes stores of `target` on one new collection (`make.collection`),
    closed and dropped afterwards."""
    collection = new_collection()
    async with (data_api_over(server) if target == 'dataapi' else _no_server()) as url:
        settings = config(target, server, collection, url)
        stores: List[EventStore] = []

        def make() -> EventStore:
            store = new_store(settings)
            stores.append(store)
            return store

        make.collection = collection  # type: ignore[attr-defined]
        make.settings = settings  # type: ignore[attr-defined]
        try:
            yield make
        finally:
            for store in stores:
                await store.close()
            drop(server, collection)


@asynccontextmanager
async def _no_server() -> AsyncIterator[str]:
    yield ''


@asynccontextmanager
async def data_api_over(server: MongoServer) -> AsyncIterator[str]:
    """The local Data API server, in this process, its data in `server`; its base URL."""
    from localdev.dataapi_server import DataApiServer

    api = DataApiServer(api_key=DATA_API_KEY, mongodb_uri=server.admin_uri)
    await api.start()
    try:
        yield api.base_url
    finally:
        await api.stop()
        api.close()


@contextmanager
def data_api_process(server: MongoServer) -> Iterator[str]:
    """The local Data API server in a process of its own, its data in `server`; its base
    URL (for tests whose own process is busy waiting for others)."""
    process = subprocess.Popen(
        [sys.executable, '-m', 'localdev.dataapi_server', '--port', '0', '--api-key',
         DATA_API_KEY, '--mongodb-uri', server.admin_uri],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    try:
        line = process.stdout.readline()
        assert 'Local Data API on ' in line, line
        yield line.split('Local Data API on ', 1)[1].split(';', 1)[0].strip()
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()


def drop(server: MongoServer, collection: str) -> None:
    with closing(MongoClient(server.admin_uri)) as client:
        for name in collection_names(collection):
            client[DATABASE].drop_collection(name)


def write_first_version(collection: Any, records: Iterable[EventRecord]) -> None:
    """`collection` (PyMongo) as the first version of the extension left it: its indexes,
    and one document per record as its upsert wrote them (no counts, no schema)."""
    for keys, options in FIRST_VERSION_INDEXES:
        collection.create_index(keys, **options)
    first_version_documents(collection, records)


def first_version_documents(collection: Any, records: Iterable[EventRecord]) -> None:
    """The documents the first version's upsert wrote for new events."""
    for record in records:
        collection.insert_one({name: getattr(record, name) for name, _ in STORED_FIELDS})


def counted(database: Any, collection: str) -> List[Tuple[str, str, int]]:
    """(installation, status, count) of every count document but zeros, sorted."""
    return sorted((found['installation_id'], found['status'], int(found['events']))
                  for found in database[collection + '_counts'].find({'events': {'$ne': 0}})
                  if 'installation_id' in found)


def stored(database: Any, collection: str) -> List[Tuple[str, str, int]]:
    """(installation, status, events) of the stored events of installations, sorted."""
    groups = database[collection].aggregate([
        {'$match': {'installation_id': {'$type': 'string'}}},
        {'$group': {'_id': {'i': '$installation_id', 's': '$status'}, 'n': {'$sum': 1}}},
    ])
    return sorted((group['_id']['i'], group['_id']['s'], group['n']) for group in groups)
