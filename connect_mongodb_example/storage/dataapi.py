"""MongoDB storage over HTTP, through a server compatible with the Atlas Data API.

Atlas switched its Data API off in September 2025; the same HTTP interface is served by
FerretDB (with its Data API listener on) and by `localdev.dataapi_server`. On Atlas itself,
use the `mongodb` (driver) backend. How requests travel (auth, retries, refusals) is in
`dataapi_client`; this module is what the store asks of the server.
"""
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

import connect_mongodb_example.storage.mongo_documents as documents
from connect_mongodb_example.errors import (
    ConfigurationError,
    DuplicateKey,
    StorageRejected,
    StorageUnavailable,
)
from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.redaction import redact_url
from connect_mongodb_example.storage.base import EventFilter, EventStore
from connect_mongodb_example.storage.dataapi_client import (
    DataApiClient,
    DataApiSettings,
)
from connect_mongodb_example.storage.host_policy import LOOPBACK_HOSTS, is_private_host
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
    'Retries after a connection error, timeout, 429 or 5xx, 0 to 10.', default='3',
)

AUTH_MODES = ('api-key', 'bearer', 'basic')
# Ample for one request's records (one per status change) and a bound on a runaway reply.
FIND_LIMIT = 10000
# The ping reads a key no event can have: any answer proves the server and the key work.
PING_FILTER = {'key': '#ping'}


class DataApiEventStore(EventStore):
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
        )

    def __init__(self, settings: DataApiSettings):
        # Built once: it is logged per event.
        self._description = (f'dataapi ({redact_url(settings.url)} '
                             f'{settings.database}.{settings.collection})')
        self._api = DataApiClient(settings, self._description)

    def describe(self) -> str:
        return self._description

    def check_storable(self, record: EventRecord) -> None:
        documents.check_size(record, self.describe())

    async def save(self, record: EventRecord) -> int:
        update = {
            'filter': documents.key_filter(record),
            'update': documents.upsert_update(record),
            'upsert': True,
        }
        try:
            result = await self._api.post('updateOne', update)
        except DuplicateKey:
            # Two first deliveries raced on the server's unique index; now the update matches.
            result = await self._api.post('updateOne', update)
        self._check_written(result)
        # The Data API's updateOne does not return the document: read the count back. A
        # concurrent redelivery may already have added its own count; both are stored.
        reply = await self._api.post('findOne', {
            'filter': documents.key_filter(record),
            'projection': {'_id': 0, 'delivery_count': 1},
        })
        document = reply.get('document')
        if not isinstance(document, dict) or 'delivery_count' not in document:
            raise StorageUnavailable(
                f'{self.describe()}: {record.key} was written but could not be read back',
            )
        return int(document['delivery_count'])

    async def find(
        self, request_id: str, installation_id: Optional[str] = None,
    ) -> List[EventRecord]:
        reply = await self._api.post('find', {
            'filter': documents.request_filter(request_id, installation_id),
            'sort': dict(documents.SORT),
            'limit': FIND_LIMIT,
        })
        return [documents.to_record(document) for document in self._documents(reply, 'find')]

    async def list_events(
        self, where: EventFilter, *, limit: int, offset: int = 0,
    ) -> List[EventRecord]:
        reply = await self._api.post('find', {
            'filter': documents.events_filter(where),
            'projection': documents.LISTED_PROJECTION,
            'sort': dict(documents.NEWEST_FIRST),
            'skip': offset,
            'limit': limit,
        })
        return [documents.to_record(document) for document in self._documents(reply, 'find')]

    async def count_events(self, where: EventFilter) -> int:
        # The Data API has no count action: an aggregation counts on the server.
        reply = await self._api.post('aggregate', {'pipeline': [
            {'$match': documents.events_filter(where)}, {'$count': 'events'},
        ]})
        counted = self._documents(reply, 'aggregate')
        # $count yields no document at all when nothing matched.
        return int(counted[0]['events']) if counted else 0

    async def ping(self) -> None:
        await self._api.post('findOne', {'filter': PING_FILTER, 'projection': {'_id': 1}})

    async def close(self) -> None:
        await self._api.close()

    def _documents(self, reply: Dict[str, Any], action: str) -> List[Dict[str, Any]]:
        found = reply.get('documents')
        if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
            raise StorageRejected(f'{self.describe()}: the {action} reply has no documents list')
        return found

    def _check_written(self, result: Dict[str, Any]) -> None:
        """Atlas answers matchedCount/modifiedCount/upsertedId; other servers vary (n,
        insertedId). Only a reply that positively says nothing was written is an error."""
        if any(result.get(name) is not None for name in ('upsertedId', 'insertedId')):
            return
        counts = [result[name] for name in ('matchedCount', 'modifiedCount', 'n')
                  if isinstance(result.get(name), (int, float))]
        if counts and not any(counts):
            raise StorageRejected(
                f'{self.describe()}: the server reports the upsert matched and inserted nothing',
            )


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
