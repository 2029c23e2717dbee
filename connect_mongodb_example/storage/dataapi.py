"""MongoDB storage over HTTP, through a server compatible with the Atlas Data API.

Atlas switched its Data API off in September 2025; the same HTTP interface is served by
FerretDB (with its Data API listener on) and by `localdev.dataapi_server`. On Atlas itself,
use the `mongodb` (driver) backend.

Bodies are Extended JSON (relaxed: plain numbers, dates as `{"$date": "...Z"}`) sent as
`application/json`: EJSON is valid JSON, FerretDB accepts no other content type and parses
the body as EJSON, and Atlas did the same. `Accept: application/ejson` asks for dates back
as `$date`; plain-JSON replies (ISO strings) are read as well.
"""
import asyncio
import ipaddress
import logging
import math
import random
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Awaitable, Callable, Dict, List, Optional
from urllib.parse import urlsplit

import httpx
from bson import json_util
from bson.json_util import JSONOptions

from connect_mongodb_example.config import LOOPBACK_HOSTS, ConfigReader, Variable, redact_url
from connect_mongodb_example.errors import (
    ConfigurationError,
    InvalidRequest,
    StorageRejected,
    StorageUnavailable,
)
from connect_mongodb_example.records import EventRecord
from connect_mongodb_example.storage import mongo_documents as documents
from connect_mongodb_example.storage.base import EventFilter, EventStore

logger = logging.getLogger(__name__)

DATA_API_URL = Variable(
    'DATA_API_URL',
    'Base URL of a Data-API-compatible server, the part before /action/...: '
    'https://dataapi.example.com, or plain http on loopback or a service name: http://ferretdb:8080.',
    aliases=('DATA_API_ENDPOINT',),
)
DATA_API_KEY = Variable(
    'DATA_API_KEY', 'Data API key, bearer token, or password (basic auth).', secure=True,
)
DATA_API_AUTH = Variable(
    'DATA_API_AUTH',
    'How the key is sent: api-key (apiKey header), bearer (Authorization: Bearer) or '
    'basic (DATA_API_USER and the key as password, e.g. FerretDB).',
    default='api-key',
)
DATA_API_USER = Variable('DATA_API_USER', 'User name for DATA_API_AUTH=basic.')
DATA_API_DATA_SOURCE = Variable(
    'DATA_API_DATA_SOURCE', 'Data source (cluster) name sent with every request.',
    default='mongodb-atlas', aliases=('CLUSTER',),
)
DATA_API_DATABASE = Variable(
    'DATA_API_DATABASE', 'Database of the events.', default='connect_events', aliases=('DB',),
)
DATA_API_COLLECTION = Variable(
    'DATA_API_COLLECTION', 'Collection of the events.', default='events',
    aliases=('HTTP_COLLECTION',),
)
DATA_API_TIMEOUT_SECONDS = Variable(
    'DATA_API_TIMEOUT_SECONDS', 'Timeout of one HTTP request (connect, read, write).',
    default='10',
)
DATA_API_RETRIES = Variable(
    'DATA_API_RETRIES',
    'Retries of a request after a connection error, a timeout, 429 or 5xx.', default='3',
)

AUTH_MODES = ('api-key', 'bearer', 'basic')
MAX_CONNECTIONS = 16
BACKOFF_BASE_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 3.0
RETRY_AFTER_CAP_SECONDS = 5.0
# Ample for one request's records (one per status change) and a bound on a runaway reply.
FIND_LIMIT = 10000
# The ping reads a key no event can have: any answer proves the server and the key work.
PING_FILTER = {'key': '#ping'}
READ_OPTIONS = JSONOptions(tz_aware=True, tzinfo=timezone.utc)
# Transport errors where another attempt may succeed. A read timeout may come after the
# server applied the update, so a retry can count one delivery twice, never lose one.
RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class DataApiSettings:
    url: str
    key: str = field(repr=False)
    auth: str
    user: str
    data_source: str
    database: str
    collection: str
    timeout: float
    retries: int


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
        self._settings = settings
        self._client: Optional[httpx.AsyncClient] = None
        # Replaceable so that tests can see the delays without waiting for them.
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        # Built once: the description is logged per event, the base URL used per request.
        self._description = (f'dataapi ({redact_url(settings.url)} '
                             f'{settings.database}.{settings.collection})')
        self._actions_url = f'{settings.url.rstrip("/")}/action/'
        # The key as sent, and as error messages quote it (str and bytes reprs escape some
        # characters): every form is masked.
        self._secrets = tuple(sorted(
            {settings.key, repr(settings.key)[1:-1], repr(settings.key.encode())[2:-1]},
            key=len, reverse=True,
        ))

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
            result = await self._post('updateOne', update)
        except _DuplicateKey:
            # Two first deliveries raced on the server's unique index; now the update matches.
            result = await self._post('updateOne', update)
        self._check_written(result)
        # The Data API's updateOne does not return the document: read the count back. A
        # concurrent redelivery may already have added its own count; both are stored.
        reply = await self._post('findOne', {
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
        reply = await self._post('find', {
            'filter': documents.request_filter(request_id, installation_id),
            'sort': dict(documents.SORT),
            'limit': FIND_LIMIT,
        })
        return [documents.to_record(document) for document in self._documents(reply, 'find')]

    async def list_events(
        self, where: EventFilter, *, limit: int, offset: int = 0,
    ) -> List[EventRecord]:
        reply = await self._post('find', {
            'filter': documents.events_filter(where),
            'projection': documents.LISTED_PROJECTION,
            'sort': dict(documents.NEWEST_FIRST),
            'skip': offset,
            'limit': limit,
        })
        return [documents.to_record(document) for document in self._documents(reply, 'find')]

    async def count_events(self, where: EventFilter) -> int:
        # The Data API has no count action: an aggregation counts on the server.
        reply = await self._post('aggregate', {'pipeline': [
            {'$match': documents.events_filter(where)}, {'$count': 'events'},
        ]})
        counted = self._documents(reply, 'aggregate')
        # $count yields no document at all when nothing matched.
        return int(counted[0]['events']) if counted else 0

    async def ping(self) -> None:
        await self._post('findOne', {'filter': PING_FILTER, 'projection': {'_id': 1}})

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _documents(self, reply: Dict[str, Any], action: str) -> List[Dict[str, Any]]:
        found = reply.get('documents')
        if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
            raise StorageRejected(f'{self.describe()}: the {action} reply has no documents list')
        return found

    def _http(self) -> httpx.AsyncClient:
        """The store's one pooled client, created on first use."""
        if self._client is None:
            s = self._settings
            headers = {
                'Content-Type': 'application/json',
                'Accept': 'application/ejson, application/json;q=0.9',
            }
            auth = None
            if s.auth == 'api-key':
                headers['apiKey'] = s.key
            elif s.auth == 'bearer':
                headers['Authorization'] = f'Bearer {s.key}'
            else:
                auth = httpx.BasicAuth(s.user, s.key)
            self._client = httpx.AsyncClient(
                headers=headers,
                auth=auth,
                timeout=httpx.Timeout(s.timeout),
                limits=httpx.Limits(
                    max_connections=MAX_CONNECTIONS,
                    max_keepalive_connections=MAX_CONNECTIONS,
                    keepalive_expiry=30,
                ),
                # A redirect could carry the apiKey header to another host: never follow.
                follow_redirects=False,
            )
        return self._client

    async def _post(self, action: str, body: Dict[str, Any]) -> Dict[str, Any]:
        """POST one action, retrying what may pass; the decoded reply, or a storage error."""
        s = self._settings
        url = self._actions_url + action
        # UTF-8 as is: escaping every non-ASCII character would make bodies up to 6x larger.
        content = json_util.dumps({
            'dataSource': s.data_source, 'database': s.database, 'collection': s.collection,
            **body,
        }, json_options=json_util.RELAXED_JSON_OPTIONS, ensure_ascii=False).encode()
        attempt = 0
        while True:
            delay = None
            try:
                response = await self._http().post(url, content=content)
            except RETRYABLE_ERRORS as error:
                problem = f'{type(error).__name__} {self._safe(str(error))}'.strip()
            except httpx.HTTPError as error:
                # E.g. LocalProtocolError: the request could not even be sent, and a retry
                # would fail alike. Its message may quote header values: masked.
                raise StorageRejected(
                    f'{self.describe()}: {action} could not be sent: '
                    f'{type(error).__name__} {self._safe(str(error))}'.strip(),
                ) from None
            else:
                if response.status_code < 300:
                    return self._decode(response)
                if response.status_code != 429 and response.status_code < 500:
                    raise self._refusal(action, response)
                problem = f'HTTP {response.status_code}{self._detail(response)}'
                delay = _retry_after(response)
            if attempt >= s.retries:
                raise StorageUnavailable(
                    f'{self.describe()}: {action} failed after {attempt + 1} attempt(s): '
                    f'{problem}',
                )
            attempt += 1
            wait = delay if delay is not None else _backoff(attempt)
            logger.warning('%s: %s failed (%s); retry %d in %.2fs',
                           self.describe(), action, problem, attempt, wait)
            await self.sleep(wait)

    def _decode(self, response: httpx.Response) -> Dict[str, Any]:
        try:
            reply = json_util.loads(response.text, json_options=READ_OPTIONS)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            kind = response.headers.get('content-type', 'no content type')
            raise StorageRejected(
                f'{self.describe()}: HTTP {response.status_code} reply is not a JSON object '
                f'({kind}); is DATA_API_URL the base URL of a Data API?',
            )
        return reply

    def _refusal(self, action: str, response: httpx.Response) -> Exception:
        detail = self._detail(response)
        if 'E11000' in detail or 'duplicate key' in detail.lower():
            return _DuplicateKey(f'{self.describe()}: {action}: {detail}')
        status = response.status_code
        if status == 413:
            # Like MongoDB's 16 MB limit: this event will never fit, retrying cannot help.
            return InvalidRequest(
                f'{self.describe()}: {action} refused, HTTP 413, the request is too large '
                f'for this server:{detail}',
            )
        hint = ''
        if status in (401, 403):
            hint = '; check DATA_API_KEY, DATA_API_AUTH and DATA_API_USER'
        elif 300 <= status < 400:
            where = self._safe(response.headers.get('location', ''))
            hint = f'; redirected to {where!r}: set DATA_API_URL to the final URL'
        elif status == 404:
            hint = '; check DATA_API_URL (the base URL, without /action/...)'
        return StorageRejected(f'{self.describe()}: {action} refused, HTTP {status}{detail}{hint}')

    def _detail(self, response: httpx.Response) -> str:
        """The server's own explanation: Atlas-style `error_code` and `error`, else text."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and (body.get('error') or body.get('error_code')):
            parts = [str(body[name]) for name in ('error_code', 'error') if body.get(name)]
            text = ': '.join(parts)
        else:
            text = (response.text.strip().splitlines() or [''])[0]
        text = self._safe(text)[:300]
        return f' {text}' if text else ''

    def _safe(self, text: str) -> str:
        """Servers do not echo keys, but a proxy's error page might: mask it regardless."""
        for secret in self._secrets:
            text = text.replace(secret, '***')
        return text

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


class _DuplicateKey(StorageRejected):
    """A racing upsert inserted the same key first."""


def _private_host(host: str) -> bool:
    """Loopback, or a single-label name (a docker compose or Kubernetes service): names that
    public DNS never resolves, so the unencrypted key stays on the machine or its private
    network. Other IP addresses and dotted names need https."""
    host = host.lower()
    if host in LOOPBACK_HOSTS:
        return True
    try:
        # What the resolver reads as IPv4, however written: 0x08080808 and 8.8.2056 are
        # 8.8.8.8, not service names.
        return ipaddress.IPv4Address(socket.inet_aton(host)).is_loopback
    except OSError:
        pass
    return host.replace('-', '').replace('_', '').isalnum() and not host.isdigit()


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
    if parts.scheme.lower() == 'http' and not _private_host(parts.hostname or ''):
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


def _backoff(attempt: int) -> float:
    """Exponential, capped, with jitter so that many stores do not retry in step."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


def _retry_after(response: httpx.Response) -> Optional[float]:
    """The server's Retry-After (seconds or an HTTP date), capped; None if absent or bad."""
    value = response.headers.get('retry-after', '').strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = (moment - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        # `Retry-After: nan` would make the sleep never end; `inf` is no better.
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)
