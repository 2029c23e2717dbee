"""MongoDB storage through the official drivers: PyMongo's asyncio client or Motor.

Both drivers run through one code path that only uses what they share. Motor is past its
end of life, so PyMongo's `AsyncMongoClient` is the default; Motor stays selectable for
deployments that pin it.
"""
import asyncio
import inspect
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import quote_plus, urlsplit

from bson.errors import InvalidDocument
from pymongo import ReturnDocument
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)
from pymongo.uri_parser import parse_uri

import connect_mongodb_example.storage.mongo_documents as documents
from connect_mongodb_example.errors import (
    ConfigurationError,
    DuplicateKey,
    InvalidRequest,
    StorageRejected,
    StorageUnavailable,
    first_line,
)
from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.redaction import Redactor, url_password
from connect_mongodb_example.storage.idle import STORAGE_IDLE_SECONDS, idle_seconds
from connect_mongodb_example.storage.mongo_collection import (
    Collections,
    Document,
    Filter,
    MongoCollection,
)
from connect_mongodb_example.storage.mongo_schema import IndexStep
from connect_mongodb_example.storage.mongo_store import MongoStore, collection_names
from connect_mongodb_example.variables import ConfigReader, Variable

logger = logging.getLogger(__name__)

MONGODB_URI = Variable(
    'MONGODB_URI',
    'MongoDB connection string, `mongodb+srv://user:password@cluster0.abcde.mongodb.net/` (Atlas) '
    'or `mongodb://host:27017`; user and password URL-quoted. Wins over `DB_HOST`.',
    secure=True,
)
MONGODB_DATABASE = Variable(
    'MONGODB_DATABASE', 'Database of the events.', default='connect_events',
    aliases=('DB',),
)
MONGODB_COLLECTION = Variable(
    'MONGODB_COLLECTION', 'Collection of the events.',
    default='events',
    aliases=('DRIVER_COLLECTION',),
)
MONGODB_DRIVER = Variable(
    'MONGODB_DRIVER',
    "`pymongo` (PyMongo's asyncio client) or `motor` (past its end of life).",
    default='pymongo',
)
MONGODB_TIMEOUT_MS = Variable(
    'MONGODB_TIMEOUT_MS',
    'Server selection and connect timeout of the MongoDB driver, 100 to 120000.',
    default='5000',
)
DB_HOST = Variable(
    'DB_HOST', 'Tutorial form, used when `MONGODB_URI` is empty: the Atlas host name only.',
)
DB_USER = Variable('DB_USER', 'Tutorial form: Atlas database user.')
DB_PASSWORD = Variable(
    'DB_PASSWORD', "Tutorial form: that user's password (quoted for you).", secure=True,
)

DRIVERS = ('pymongo', 'motor')
SCHEMES = ('mongodb', 'mongodb+srv')
# AuthenticationFailed, Unauthorized: the credentials or the user's roles are wrong.
AUTH_ERROR_CODES = frozenset({18, 13})
# BSONObjectTooLarge: the server found the document over its 16 MB limit.
TOO_LARGE_ERROR_CODES = frozenset({10334})
# IndexOptionsConflict, IndexKeySpecsConflict: an index on the same keys exists already.
INDEX_CONFLICT_CODES = frozenset({85, 86})
# NamespaceExists, IndexAlreadyExists, IndexBuildAborted, IndexBuildAlreadyInProgress: another
# process created the collection or the same index at the same moment; asking again settles.
INDEX_RACE_CODES = frozenset({48, 68, 276, 325})
INDEX_RACE_ATTEMPTS = 5
# IndexNotFound, NamespaceNotFound: another process dropped it first.
INDEX_GONE_CODES = frozenset({26, 27})
# Errors that say the server or the network may answer on a later try.
TRANSIENT_ERRORS = (ConnectionFailure, ExecutionTimeout, WTimeoutError)


@dataclass(frozen=True)
class MongoSettings:
    uri: str = field(repr=False)
    hosts: str
    database: str
    collection: str
    driver: str
    timeout_ms: int
    idle_seconds: float = float(STORAGE_IDLE_SECONDS.default)


def client_class(driver: str) -> Callable[..., Any]:
    """The asyncio client class of `driver` (imported on demand: Motor is optional)."""
    if driver == 'motor':
        from motor.motor_asyncio import AsyncIOMotorClient
        return AsyncIOMotorClient
    from pymongo import AsyncMongoClient
    return AsyncMongoClient


def new_client(s: MongoSettings) -> Any:
    """A client of the settings' driver; it connects on first use."""
    return client_class(s.driver)(
        s.uri,
        serverSelectionTimeoutMS=s.timeout_ms,
        connectTimeoutMS=s.timeout_ms,
        tz_aware=True,
        appname='connect-mongodb-example',
        # The pool follows the load: the driver closes connections that rested this long (it
        # looks every second) and keeps none open for their own sake. Its monitoring
        # connections, one or two per server, stay open while the client is.
        maxIdleTimeMS=max(1, round(s.idle_seconds * 1000)) if s.idle_seconds else None,
        minPoolSize=0,
    )


async def close_client(client: Any) -> None:
    """Motor's close() is synchronous; PyMongo's asyncio close() is a coroutine."""
    result = client.close()
    if inspect.isawaitable(result):
        await result


class DriverCollection(MongoCollection):
    """A collection reached through PyMongo's asyncio client or Motor (one code path: only
    what both share), driver errors turned into the application's."""

    def __init__(self, collection: Any, translated: Callable[[], ContextManager[None]]):
        self._collection = collection
        self._translated = translated

    async def find_one(self, query: Filter, projection: Optional[Filter] = None,
                       ) -> Optional[Document]:
        with self._translated():
            return await self._collection.find_one(query, projection)

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
        with self._translated():
            cursor = self._collection.find(query, projection)
            if sort:
                cursor = cursor.sort(list(sort))
            if hint is not None:
                cursor = cursor.hint(list(hint))
            return await cursor.skip(skip).limit(limit).to_list(None)

    async def count(self, query: Filter) -> int:
        with self._translated():
            return int(await self._collection.count_documents(query))

    async def aggregate(self, pipeline: List[Document]) -> List[Document]:
        with self._translated():
            cursor = self._collection.aggregate(pipeline)
            if inspect.isawaitable(cursor):  # PyMongo's asyncio client; Motor returns it
                cursor = await cursor
            return await cursor.to_list(None)

    async def insert_one(self, document: Document) -> None:
        with self._translated():
            await self._collection.insert_one(document)

    async def update_one(self, query: Filter, update: Document, *, upsert: bool = False,
                         ) -> Optional[int]:
        with self._translated():
            result = await self._collection.update_one(query, update, upsert=upsert)
        return int(result.matched_count)

    async def update_many(self, query: Filter, update: Document) -> None:
        with self._translated():
            await self._collection.update_many(query, update)

    async def delete_one(self, query: Filter) -> None:
        with self._translated():
            await self._collection.delete_one(query)

    async def delete_many(self, query: Filter) -> int:
        with self._translated():
            return int((await self._collection.delete_many(query)).deleted_count)

    async def upsert_and_read(self, query: Filter, update: Document, projection: Filter,
                              ) -> Optional[Document]:
        with self._translated():
            document = await self._collection.find_one_and_update(
                query, update, upsert=True, return_document=ReturnDocument.AFTER,
                projection=projection)
            if document is None:
                # MongoDB always returns the upserted document; a compatible server
                # (SecantusDB under racing upserts) may apply the update yet return none.
                document = await self._collection.find_one(query, projection)
        return document


class MongoEventStore(MongoStore):
    name = 'mongodb'
    variables = (
        MONGODB_URI, MONGODB_DATABASE, MONGODB_COLLECTION, MONGODB_DRIVER, MONGODB_TIMEOUT_MS,
        DB_HOST, DB_USER, DB_PASSWORD,
    )
    @classmethod
    def parse_settings(cls, reader: ConfigReader) -> MongoSettings:
        if reader.is_set(MONGODB_URI):
            uri = reader.url(MONGODB_URI, schemes=SCHEMES)
        elif reader.is_set(DB_HOST):
            uri = _tutorial_uri(reader)
        else:
            raise ConfigurationError(
                MONGODB_URI.name,
                'is required for the mongodb backend; set MONGODB_URI '
                '(mongodb+srv://... or mongodb://...), or DB_HOST, DB_USER and DB_PASSWORD',
            )
        return MongoSettings(
            uri=uri,
            hosts=_checked_hosts(uri),
            database=_checked_name(reader, MONGODB_DATABASE, '/\\. "$', 63),
            # Room for the suffixes of the collections named from it (MongoDB's namespace
            # limit is 255 bytes).
            collection=_checked_name(reader, MONGODB_COLLECTION, '$',
                                     200 - documents.LONGEST_SUFFIX),
            driver=reader.choice(MONGODB_DRIVER, DRIVERS),
            timeout_ms=reader.integer(MONGODB_TIMEOUT_MS, minimum=100, maximum=120000),
            idle_seconds=idle_seconds(reader),
        )

    def __init__(self, settings: MongoSettings):
        super().__init__()
        self._settings = settings
        self._client: Any = None
        self._retention_index_ready = False
        # Driver messages name hosts, not credentials: masked regardless (belt and braces).
        self._redact = Redactor(settings.uri, url_password(settings.uri))
        # Built once: it is logged, and put in errors, per event.
        self._description = (f'mongodb ({settings.hosts}/{settings.database}.'
                             f'{settings.collection} via {settings.driver})')

    def describe(self) -> str:
        return self._description

    def check_storable(self, record: EventRecord) -> None:
        documents.check_size(record, self.describe())

    async def ping(self) -> None:
        with self._translated_errors():
            await self._open_client().admin.command('ping')

    async def close(self) -> None:
        client, self._client = self._client, None
        self._forget_collections()
        self._retention_index_ready = False
        if client is not None:
            await close_client(client)

    def _collections(self) -> Collections:
        database = self._open_client()[self._settings.database]
        return Collections(*(DriverCollection(database[name], self._translated_errors)
                             for name in collection_names(self._settings.collection)))

    def _open_client(self) -> Any:
        """The store's one client, created on first use (no await: no two get created)."""
        if self._client is None:
            self._client = new_client(self._settings)
            logger.info('MongoDB client created: %s', self.describe())
        return self._client

    def _index_creator(self) -> Optional[IndexStep]:
        return self._create_indexes

    async def _create_indexes(self) -> None:
        collection = self._open_client()[self._settings.database][self._settings.collection]
        with self._translated_errors():
            for keys, options in documents.EVENT_INDEXES:
                await self._create_index(collection, keys, options)
            existing = await collection.index_information()
            for name in documents.RETIRED_INDEX_NAMES:
                if name in existing:
                    await _drop_index(collection, name)

    async def _create_retention_index(self) -> None:
        if not self._retention_index_ready:
            collection = self._open_client()[self._settings.database][self._settings.collection]
            keys, options = documents.RETENTION_INDEX
            with self._translated_errors():
                await self._create_index(collection, keys, options)
            self._retention_index_ready = True

    async def _create_index(self, collection: Any, keys: Any, options: Any) -> None:
        try:
            await _create_index_settling_races(collection, keys, options)
        except OperationFailure as error:
            if error.code not in INDEX_CONFLICT_CODES:
                raise
            name = options['name']
            if options.get('unique') and not await _has_unique_index(collection, keys):
                # Without a unique index, racing first deliveries would insert one document
                # each: refuse rather than store duplicates.
                fields = ', '.join(field for field, _ in keys)
                raise StorageRejected(
                    f'{self.describe()}: the collection has a non-unique index on {fields}; '
                    f'drop it so that {name} can keep one document per event',
                ) from error
            # Someone already indexed these keys under another name or options: use theirs
            # rather than refuse every event (reads hint keys, not names).
            logger.warning('%s: index %s not created, the collection has one on the same '
                           'keys: %s', self.describe(), name, self._safe(error))

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        try:
            yield
        except PyMongoError as error:
            raise self._storage_error(error) from error
        except InvalidDocument as error:
            raise InvalidRequest(f'{self.describe()}: cannot store the request: '
                                 f'{self._safe(error)}') from error

    def _storage_error(self, error: PyMongoError) -> Exception:
        where = self.describe()
        message = self._safe(error)
        code = getattr(error, 'code', None)
        if isinstance(error, DuplicateKeyError):
            # Settled where it can happen (racing upserts); anywhere else a refusal.
            return DuplicateKey(f'{where}: {message}')
        if isinstance(error, TRANSIENT_ERRORS) or error.has_error_label('RetryableWriteError'):
            return StorageUnavailable(f'{where}: {type(error).__name__}: {message}')
        if isinstance(error, OperationFailure) and code in AUTH_ERROR_CODES:
            # Not an outage: retrying cannot help until the variable or the roles change.
            return ConfigurationError(
                MONGODB_URI.name,
                f'{where}: not authorised (code {code}): {message}; check the user and '
                f"password of MONGODB_URI (or DB_USER/DB_PASSWORD) and the user's roles",
            )
        if isinstance(error, OperationFailure) and code in TOO_LARGE_ERROR_CODES:
            return InvalidRequest(f'{where}: the document is too large: {message}')
        if isinstance(error, OperationFailure):
            return StorageRejected(f'{where}: refused (code {code}): {message}')
        # Anything else (e.g. an SRV record that does not resolve yet) may pass: retry later.
        return StorageUnavailable(f'{where}: {type(error).__name__}: {message}')

    def _safe(self, error: BaseException) -> str:
        return self._redact(first_line(error))


async def _drop_index(collection: Any, name: str) -> None:
    """Drop an index another process may be dropping at the same moment."""
    try:
        await collection.drop_index(name)
    except OperationFailure as error:
        if error.code not in INDEX_GONE_CODES:
            raise


async def _create_index_settling_races(collection: Any, keys: Any, options: Any) -> None:
    """Create the index; when another process is creating it (or the collection) at the same
    moment, ask again: the answer is then that it exists (several workers and replicas meet
    a fresh database together)."""
    for attempt in range(1, INDEX_RACE_ATTEMPTS + 1):
        try:
            await collection.create_index(keys, **options)
            return
        except OperationFailure as error:
            if error.code not in INDEX_RACE_CODES or attempt == INDEX_RACE_ATTEMPTS:
                raise
            await asyncio.sleep(0.05 * attempt)


async def _has_unique_index(collection: Any, keys: Any) -> bool:
    """Whether a unique index on exactly `keys` exists (a partial one leaves gaps)."""
    wanted = [tuple(key) for key in keys]
    for index in (await collection.index_information()).values():
        if ([tuple(key) for key in index['key']] == wanted and index.get('unique')
                and 'partialFilterExpression' not in index):
            return True
    return False


def _tutorial_uri(reader: ConfigReader) -> str:
    """The Atlas connection string the tutorial built from DB_HOST, DB_USER and DB_PASSWORD."""
    host = reader.text(DB_HOST)
    if any(mark in host for mark in ('/', '@', ':', '?')):
        raise ConfigurationError(
            DB_HOST.name,
            f'must be an Atlas host name such as cluster0.abcde.mongodb.net, got {host!r}; '
            f'for any other server set MONGODB_URI instead',
        )
    user = reader.text(DB_USER, required=True)
    password = reader.text(DB_PASSWORD, required=True)
    return (f'mongodb+srv://{quote_plus(user)}:{quote_plus(password)}@{host}/'
            f'?retryWrites=true&w=majority')


def _checked_hosts(uri: str) -> str:
    """Check the URI without any I/O and return its host list (safe to log).

    `parse_uri` would look up the SRV record of a mongodb+srv URI, so that form is checked
    as a plain URI plus the SRV rules (one host, no port).
    """
    srv = uri.lower().startswith('mongodb+srv://')
    plain = 'mongodb://' + uri.split('://', 1)[1] if srv else uri
    try:
        parsed = parse_uri(plain, validate=True, warn=False)
    except (PyMongoError, ValueError) as error:
        redact = Redactor(uri, url_password(uri))
        raise ConfigurationError(
            MONGODB_URI.name, f'is not a valid MongoDB URI: {redact(str(error))}') from None
    nodes = parsed['nodelist']
    if srv:
        explicit_port = ':' in urlsplit(uri).netloc.rsplit('@', 1)[-1]
        if len(nodes) != 1 or explicit_port:
            raise ConfigurationError(
                MONGODB_URI.name, 'a mongodb+srv:// URI names exactly one host and no port',
            )
        return nodes[0][0]
    return ','.join(f'{host}:{port}' for host, port in nodes)


def _checked_name(reader: ConfigReader, var: Variable, forbidden: str, longest: int) -> str:
    value = reader.text(var)
    bad = sorted({char for char in value if char in forbidden or char == '\0'})
    if bad or len(value.encode()) > longest or value.startswith('system.'):
        # Name the variable that was actually set, which may be the tutorial's alias.
        name = next((name for name in (var.name, *var.aliases)
                     if reader.is_set(Variable(name, ''))), var.name)
        raise ConfigurationError(
            name, f'{value!r} is not a valid MongoDB name (at most {longest} bytes, '
                      f'without {" ".join(repr(c) for c in forbidden)}, not system.*)',
        )
    return value

