"""MongoDB storage over HTTP, through a server compatible with the Atlas Data API.

Atlas switched its Data API off in September 2025; the same HTTP interface is served by
FerretDB (with its Data API listener on) and by `localdev.dataapi_server`. On Atlas itself,
use the `mongodb` (driver) backend. How requests travel (auth, retries, refusals) is in
`dataapi_client`; this module is what the store asks of the server.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import connect_mongodb_example.storage.mongo_documents as documents
from connect_mongodb_example.errors import ConfigurationError, DuplicateKey, StorageRejected
from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.redaction import redact_url
from connect_mongodb_example.storage.dataapi_client import (
    DataApiClient,
    DataApiSettings,
)
from connect_mongodb_example.storage.host_policy import LOOPBACK_HOSTS, is_private_host
from connect_mongodb_example.storage.idle import idle_seconds
from connect_mongodb_example.storage.mongo_collection import (
    Collections,
    Document,
    Filter,
    MongoCollection,
)
from connect_mongodb_example.storage.mongo_store import MongoStore, collection_names
from connect_mongodb_example.variables import ConfigReader, Variable

DATA_API_URL = Variable(
    'DATA_API_URL',
    'Base URL of a Data-API-compatible server (FerretDB, `localdev.dataapi_server`), before '
    '`/action/...`; `https://`, plain `http://` only on loopback or a single-label service name '
    'such as `http://ferretdb:8080`.',
    aliases=('DATA_API_ENDPOINT',),
)
DATA_API_KEY = Variable(
    'DATA_API_KEY',
    'API key, bearer token, or password for basic auth; printable ASCII, since it travels in an '
    'HTTP header.', secure=True,
)
DATA_API_AUTH = Variable(
    'DATA_API_AUTH',
    '`api-key` (`apiKey` header), `bearer` or `basic`.',
    default='api-key',
)
DATA_API_USER = Variable('DATA_API_USER', 'User name, required when `DATA_API_AUTH` is `basic`.')
DATA_API_DATA_SOURCE = Variable(
    'DATA_API_DATA_SOURCE', '`dataSource` sent with each request.',
    default='mongodb-atlas', aliases=('CLUSTER',),
)
DATA_API_DATABASE = Variable(
    'DATA_API_DATABASE', 'Database of the events.',
    default='connect_events', aliases=('DB',),
)
DATA_API_COLLECTION = Variable(
    'DATA_API_COLLECTION', 'Collection of the events.',
    default='events',
    aliases=('HTTP_COLLECTION',),
)
DATA_API_TIMEOUT_SECONDS = Variable(
    'DATA_API_TIMEOUT_SECONDS', 'Timeout of one HTTP request.',
    default='10',
)
DATA_API_RETRIES = Variable(
    'DATA_API_RETRIES',
    'Retries after a connection error, a timeout, a 429, or a 5xx or error code a later '
    'attempt may pass, 0 to 10.', default='3',
)

AUTH_MODES = ('api-key', 'bearer', 'basic')
# The ping reads a key no event can have: any answer proves the server and the key work.
PING_FILTER = {'key': '#ping'}


class HttpCollection(MongoCollection):
    """A collection reached through the Data API's actions (`find`, `updateOne`...); the
    client sends every request to the configured database, and this collection's name."""

    def __init__(self, api: DataApiClient, name: str, describe: str):
        self._api = api
        self.name = name
        self._describe = describe

    async def find_one(self, query: Filter, projection: Optional[Filter] = None,
                       ) -> Optional[Document]:
        body: Dict[str, Any] = {'filter': query}
        if projection is not None:
            body['projection'] = projection
        document = (await self._post('findOne', body)).get('document')
        if document is not None and not isinstance(document, dict):
            raise StorageRejected(f'{self._describe}: the findOne reply has no document')
        return document

    async def find(
        self,
        query: Filter,
        *,
        limit: int,
        projection: Optional[Filter] = None,
        sort: Sequence[Tuple[str, int]] = (),
        skip: int = 0,
        hint: Optional[Sequence[Tuple[str, int]]] = None,
    ) -> List[Document]:
        # No hint: the Data API has no such parameter (the server's planner chooses).
        body: Dict[str, Any] = {'filter': query, 'limit': limit}
        if projection is not None:
            body['projection'] = projection
        if sort:
            body['sort'] = dict(sort)
        if skip:
            body['skip'] = skip
        return self._documents(await self._post('find', body), 'find')

    async def count(self, query: Filter) -> int:
        # The Data API has no count action: an aggregation counts on the server.
        counted = await self.aggregate([{'$match': query}, {'$count': 'events'}])
        # $count yields no document at all when nothing matched.
        return int(counted[0]['events']) if counted else 0

    async def aggregate(self, pipeline: List[Document]) -> List[Document]:
        return self._documents(await self._post('aggregate', {'pipeline': pipeline}),
                               'aggregate')

    async def insert_one(self, document: Document) -> None:
        await self._post('insertOne', {'document': document})

    async def update_one(self, query: Filter, update: Document, *, upsert: bool = False,
                         ) -> Optional[int]:
        reply = await self._post('updateOne', {'filter': query, 'update': update,
                                               'upsert': upsert})
        matched = reply.get('matchedCount')
        return int(matched) if isinstance(matched, (int, float)) else None

    async def update_many(self, query: Filter, update: Document) -> None:
        await self._post('updateMany', {'filter': query, 'update': update})

    async def delete_one(self, query: Filter) -> None:
        await self._post('deleteOne', {'filter': query})

    async def delete_many(self, query: Filter) -> int:
        reply = await self._post('deleteMany', {'filter': query})
        deleted = reply.get('deletedCount')
        if not isinstance(deleted, (int, float)):
            # The count is what a delete takes off the counts: without it, stop.
            raise StorageRejected(f'{self._describe}: the deleteMany reply has no deletedCount')
        return int(deleted)

    async def upsert_and_read(self, query: Filter, update: Document, projection: Filter,
                              ) -> Optional[Document]:
        self._check_written(await self._post('updateOne', {
            'filter': query, 'update': update, 'upsert': True}))
        # The Data API's updateOne does not return the document: read it back. A concurrent
        # redelivery may already have added its own delivery; both are stored.
        return await self.find_one(query, projection)

    async def _post(self, action: str, body: Dict[str, Any]) -> Dict[str, Any]:
        return await self._api.post(action, {'collection': self.name, **body})

    def _documents(self, reply: Dict[str, Any], action: str) -> List[Document]:
        found = reply.get('documents')
        if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
            raise StorageRejected(f'{self._describe}: the {action} reply has no documents list')
        return found

    def _check_written(self, result: Dict[str, Any]) -> None:
        """Atlas answers matchedCount/modifiedCount/upsertedId; other servers vary (n,
        insertedId). Only a reply that positively says nothing was written is an error.

        An upsert that matched nothing and inserted nothing lost a race on the unique key: a
        racing first delivery inserted the document between its match and its insert.
        Atlas answered that with a duplicate key error; FerretDB 2.x drops the write error and
        answers 200 with zero counts. Both are `DuplicateKey`, which the store retries once:
        the same update then matches the document.
        """
        if any(result.get(name) is not None for name in ('upsertedId', 'insertedId')):
            return
        counts = [result[name] for name in ('matchedCount', 'modifiedCount', 'n')
                  if isinstance(result.get(name), (int, float))]
        if counts and not any(counts):
            raise DuplicateKey(
                f'{self._describe}: the server reports the upsert matched and inserted nothing '
                '(a racing first delivery inserted it)',
            )


class DataApiEventStore(MongoStore):
    name = 'dataapi'
    variables = (
        DATA_API_URL, DATA_API_KEY, DATA_API_AUTH, DATA_API_USER, DATA_API_DATA_SOURCE,
        DATA_API_DATABASE, DATA_API_COLLECTION, DATA_API_TIMEOUT_SECONDS, DATA_API_RETRIES,
    )

    @classmethod
    def parse_settings(cls, reader: ConfigReader) -> DataApiSettings:
        url = _checked_url(reader)
        auth = reader.choice(DATA_API_AUTH, AUTH_MODES)
        return DataApiSettings(
            url=url,
            key=_checked_key(reader),
            auth=auth,
            user=reader.text(DATA_API_USER, required=auth == 'basic'),
            data_source=reader.text(DATA_API_DATA_SOURCE),
            database=reader.text(DATA_API_DATABASE),
            collection=reader.text(DATA_API_COLLECTION),
            timeout=reader.seconds(DATA_API_TIMEOUT_SECONDS, minimum=0.1, maximum=300),
            retries=reader.integer(DATA_API_RETRIES, minimum=0, maximum=10),
            idle_seconds=idle_seconds(reader),
        )

    def __init__(self, settings: DataApiSettings):
        super().__init__()
        # Built once: it is logged per event.
        self._description = (f'dataapi ({redact_url(settings.url)} '
                             f'{settings.database}.{settings.collection})')
        self._api = DataApiClient(settings, self._description)
        self._names = collection_names(settings.collection)

    def describe(self) -> str:
        return self._description

    def check_storable(self, record: EventRecord) -> None:
        documents.check_size(record, self.describe())

    async def ping(self) -> None:
        await self._api.post('findOne', {'filter': PING_FILTER, 'projection': {'_id': 1}})

    async def close(self) -> None:
        self._forget_collections()
        await self._api.close()

    def _collections(self) -> Collections:
        return Collections(*(HttpCollection(self._api, name, self._description)
                             for name in self._names))


def _checked_key(reader: ConfigReader) -> str:
    """The key goes into an HTTP header: anything but printable ASCII would break the request
    (and a line break could inject a header), so it is refused here, without echoing it."""
    key = reader.text(DATA_API_KEY, required=True)
    if not all(' ' <= char <= '~' for char in key):
        raise ConfigurationError(
            DATA_API_KEY.name, 'must be printable ASCII, without line breaks or control '
                               'characters (value hidden)',
        )
    return key


def _checked_url(reader: ConfigReader) -> str:
    url = reader.url(DATA_API_URL, schemes=('https', 'http'))
    name = DATA_API_URL.name
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ConfigurationError(
            name, 'must not contain a user or password; use DATA_API_KEY (and DATA_API_USER)',
        )
    if parts.scheme.lower() == 'http' and not is_private_host(parts.hostname or ''):
        raise ConfigurationError(
            name, f'plain http:// would send the key unencrypted to {parts.hostname}; use '
                  f'https:// (http:// is accepted only for {", ".join(sorted(LOOPBACK_HOSTS))} '
                  'and single-label service names such as http://ferretdb:8080)',
        )
    if '/action/' in parts.path:
        raise ConfigurationError(
            name, 'must be the base URL, without /action/... (it is added per request)',
        )
    return url
