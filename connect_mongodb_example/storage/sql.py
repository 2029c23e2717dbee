"""SQL storage through peewee: PostgreSQL (psycopg2) or an embedded SQLite file.

peewee is synchronous, so every call runs on a small thread pool sized like the connection
pool, keeping the event loop free for other tasks.
"""
import asyncio
import logging
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, List, Optional, Tuple, TypeVar
from urllib.parse import unquote, urlsplit

import peewee
from playhouse.db_url import parse as parse_db_url
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from connect_mongodb_example.errors import (
    ConfigurationError,
    InvalidRequest,
    StorageUnavailable,
    first_line,
)
from connect_mongodb_example.event_record import STORED_FIELDS, EventRecord
from connect_mongodb_example.record_fields import COUNT, INCREMENT, JSON, LATEST, TIME, Stored
from connect_mongodb_example.redaction import redact_url
from connect_mongodb_example.storage.base import EventFilter, EventStore
from connect_mongodb_example.storage.sql_errors import configuration_problem
from connect_mongodb_example.storage.sql_schema import (
    COLUMN_LENGTHS,
    EncodedJSON,
    counts_model,
    ensure_schema,
    event_model,
)
from connect_mongodb_example.variables import ConfigReader, Variable

logger = logging.getLogger(__name__)
T = TypeVar('T')
#: What a page reads of each row: every stored field but the documents, which it does not show.
PAGE_FIELDS = tuple((name, stored) for name, stored in STORED_FIELDS if stored.kind != JSON)
#: One parameter of the upsert, taken from the record.
Parameter = Callable[[EventRecord], Any]

DATABASE_URL = Variable(
    'DATABASE_URL',
    'SQL database, peewee URL form: `sqlite:///relative.sqlite3`, `sqlite:////absolute.sqlite3`, '
    '`postgresql://user:password@host:5432/db`.',
    default='sqlite:///data/events.sqlite3',
    secure=True,
)
DATABASE_POOL_SIZE = Variable(
    'DATABASE_POOL_SIZE',
    'Connections (and worker threads) the SQL backend keeps per process.',
    default='8',
)
SQLITE_SCHEMES = ('sqlite',)
POSTGRES_SCHEMES = ('postgres', 'postgresql')
# Seconds to wait for a PostgreSQL connection, unless the URL sets connect_timeout itself.
CONNECT_TIMEOUT = 5
TCP_USER_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class SqlSettings:
    url: str
    pool_size: int


class SqlEventStore(EventStore):
    name = 'sql'
    variables = (DATABASE_URL, DATABASE_POOL_SIZE)

    @classmethod
    def parse_settings(cls, reader: ConfigReader) -> SqlSettings:
        url = reader.text(DATABASE_URL)
        if url.partition(':')[0].lower() in SQLITE_SCHEMES:
            _check_sqlite_url(url)
        else:
            url = reader.url(DATABASE_URL, schemes=SQLITE_SCHEMES + POSTGRES_SCHEMES)
            _check_port(url)
        return SqlSettings(
            url=url,
            pool_size=reader.integer(DATABASE_POOL_SIZE, minimum=1, maximum=100),
        )

    def __init__(self, settings: SqlSettings):
        self._settings = settings
        self._executor = ThreadPoolExecutor(settings.pool_size, thread_name_prefix='sql-store')
        self._open_lock = threading.Lock()
        self._database: Optional[peewee.Database] = None
        self._model: Any = None
        self._upsert: Tuple[str, Tuple[Parameter, ...], Tuple[Any, ...]] = ('', (), ())
        # Logged with every stored event: worked out once.
        self._description = f'sql ({redact_url(settings.url)})'
        self._postgres = urlsplit(settings.url).scheme.lower() in POSTGRES_SCHEMES

    def describe(self) -> str:
        return self._description

    def check_storable(self, record: EventRecord) -> None:
        """Column lengths, and NUL, which PostgreSQL refuses in text and in jsonb."""
        for name, longest in COLUMN_LENGTHS.items():
            value = getattr(record, name)
            if isinstance(value, str) and (len(value) > longest or '\x00' in value):
                raise InvalidRequest(
                    f'{self.describe()}: {name} of request {record.request_id[:longest]} is '
                    f'over {longest} characters or contains NUL',
                )
        if self._postgres and '\\u0000' in record.request_json:
            raise InvalidRequest(
                f'{self.describe()}: request {record.request_id} contains NUL (\\u0000), '
                'which PostgreSQL cannot store',
            )

    async def save(self, record: EventRecord) -> int:
        return await self._call(self._save, record)

    async def find(
        self, request_id: str, installation_id: Optional[str] = None,
    ) -> List[EventRecord]:
        return await self._call(self._find, request_id, installation_id)

    async def list_events(
        self, where: EventFilter, *, limit: int, offset: int = 0,
    ) -> List[EventRecord]:
        return await self._call(self._list, where, limit, offset)

    async def count_events(self, where: EventFilter) -> int:
        return await self._call(self._count, where)

    async def ping(self) -> None:
        await self._call(lambda: self._database.execute_sql('SELECT 1').fetchone())

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._guarded, function, *args,
        )

    def _guarded(self, function: Callable[..., T], *args: Any) -> T:
        """Run in a worker thread: open on first use, and map driver errors to ours."""
        try:
            self._open()
            # Each worker thread keeps its connection between calls: checking one out of
            # peewee's pool per call costs a round trip (the pool tests it with SELECT 1).
            self._database.connect(reuse_if_open=True)
            return function(*args)
        except peewee.DataError as error:
            # SQLSTATE class 22 (data exception): this row can never be written.
            raise InvalidRequest(f'{self.describe()}: {first_line(error)}') from error
        except (peewee.DatabaseError, peewee.InterfaceError) as error:
            problem = configuration_problem(error)
            if problem is not None:
                # Not an outage: retrying cannot help until the variable or the grants change.
                raise ConfigurationError(
                    DATABASE_URL.name, f'{self.describe()} refused access: {problem}; check '
                    "the user, password and database of DATABASE_URL and that user's grants",
                ) from error
            if not isinstance(error, (peewee.OperationalError, peewee.InterfaceError)):
                raise
            # The connection may be broken (server restarted): drop it instead of pooling it.
            if self._database is not None and not self._database.is_closed():
                self._database.manual_close()
            raise StorageUnavailable(f'{self.describe()}: {first_line(error)}') from error

    def _open(self) -> None:
        if self._model is not None:
            return
        with self._open_lock:
            if self._model is not None:
                return
            database = self._database or _connect(self._settings)
            self._database = database
            with database.connection_context():
                ensure_schema(database)
            model = event_model(database)
            self._upsert = _compile_upsert(model)
            # Last: other threads take a set model to mean the store is ready.
            self._model = model
            logger.info('SQL storage ready: %s', self.describe())

    def _save(self, record: EventRecord) -> int:
        sql, parameters, tail = self._upsert
        params = tuple(parameter(record) for parameter in parameters) + tail
        # One statement, atomic on its own: peewee runs in autocommit mode, so no BEGIN/COMMIT.
        return self._database.execute_sql(sql, params).fetchone()[0]

    def _find(self, request_id: str, installation_id: Optional[str]) -> List[EventRecord]:
        model = self._model
        query = model.select().where(model.request_id == request_id)
        if installation_id is not None:
            query = query.where(model.installation_id == installation_id)
        return [_to_record(row) for row in query.order_by(model.received_at, model.id)]

    def _list(self, where: EventFilter, limit: int, offset: int) -> List[EventRecord]:
        model = self._model
        newest_first = (model.last_received_at.desc(), model.key)
        # The page's keys first, from the read index alone: skipping `offset` entries then
        # costs no table rows. Only the page's own rows are read, by their unique key.
        keys = self._matching(model.select(model.key), where).order_by(
            *newest_first).limit(limit).offset(offset)
        columns = [getattr(model, name) for name, _ in PAGE_FIELDS]
        query = model.select(*columns).where(model.key.in_(keys)).order_by(*newest_first)
        return [_to_record(row, PAGE_FIELDS) for row in query]

    def _count(self, where: EventFilter) -> int:
        model = self._model
        if where.request_id is not None:
            # A request has a few events: the request index finds them.
            return self._matching(model.select(peewee.fn.COUNT(model.id)), where).scalar()
        # The counts the triggers keep (see sql_schema): a page must not count a million rows.
        counts = counts_model(self._database)
        query = counts.select(peewee.fn.COALESCE(peewee.fn.SUM(counts.events), 0)).where(
            counts.installation_id == where.installation_id)
        if where.status is not None:
            query = query.where(counts.status == where.status)
        return int(query.scalar())

    def _matching(self, query: Any, where: EventFilter) -> Any:
        """`query` narrowed to the filter; the read indexes start with these columns."""
        model = self._model
        query = query.where(model.installation_id == where.installation_id)
        if where.status is not None:
            query = query.where(model.status == where.status)
        if where.request_id is not None:
            query = query.where(model.request_id == where.request_id)
        return query

    def _close(self) -> None:
        database, self._database = self._database, None
        self._model = None
        if database is not None:
            database.close_all()


def _compile_upsert(model: Any) -> Tuple[str, Tuple[Parameter, ...], Tuple[Any, ...]]:
    """The upsert's SQL, what each of its parameters takes from a record (in order), and
    its trailing parameters.

    peewee spends about 0.3 ms of CPU building this query, more than the database takes to
    run it: it is compiled once per store, and each event only binds its values.
    """
    fields = tuple(field for field in model._meta.sorted_fields if field.name != 'id')
    # What a redelivery changes; every other column keeps its first write.
    update = {}
    for name, stored in STORED_FIELDS:
        column = getattr(model, name)
        if stored.on_redelivery == INCREMENT:
            update[column] = column + 1
        elif stored.on_redelivery == LATEST:
            update[column] = getattr(peewee.EXCLUDED, name)
    query = model.insert(dict.fromkeys(fields)).on_conflict(
        conflict_target=[model.key], update=update,
    ).returning(model.delivery_count)
    sql, params = query.sql()
    stored = dict(STORED_FIELDS)
    parameters = tuple(_parameter(field, stored[field.name]) for field in fields)
    return sql, parameters, tuple(params[len(fields):])


def _check_port(url: str) -> None:
    try:
        urlsplit(url).port  # noqa: B018 - reading the port is the check
    except ValueError:
        raise ConfigurationError(
            DATABASE_URL.name, 'has a port that is not a number (value hidden)') from None


def _check_sqlite_url(url: str) -> None:
    if sqlite3.sqlite_version_info < (3, 35):
        raise ConfigurationError(
            DATABASE_URL.name, f'SQLite {sqlite3.sqlite_version} is too old: the upsert needs '
                               '3.35 or later (RETURNING); use PostgreSQL or a newer Python build',
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigurationError(DATABASE_URL.name, 'is not a valid URL') from None
    if parts.netloc or not parts.path.strip('/'):
        # peewee reads sqlite://events.db as an in-memory database: the data would vanish.
        raise ConfigurationError(
            DATABASE_URL.name,
            'a SQLite URL needs three slashes and a file: sqlite:///data/events.sqlite3 '
            '(relative) or sqlite:////var/lib/events.sqlite3 (absolute)',
        )
    if parts.path.strip('/') == ':memory:':
        raise ConfigurationError(
            DATABASE_URL.name, 'an in-memory SQLite database would lose every event on restart',
        )


def _connect(settings: SqlSettings) -> peewee.Database:
    scheme = urlsplit(settings.url).scheme.lower()
    options = parse_db_url(settings.url)
    name = options.pop('database')
    if scheme in POSTGRES_SCHEMES:
        # peewee leaves them URL-quoted, as written; libpq would decode them, and so do we
        # (a generated password holds @ / : % and must be quoted in the URL, a Unix socket
        # directory is a host with its slashes quoted).
        name = unquote(name)
        for part in ('user', 'password', 'host'):
            if options.get(part):
                options[part] = unquote(options[part])
    # timeout: how long a thread waits for a free connection when all are in use.
    pool = {'max_connections': settings.pool_size, 'stale_timeout': 300, 'timeout': 30}
    if scheme in SQLITE_SCHEMES:
        directory = os.path.dirname(name)
        if directory:
            os.makedirs(directory, exist_ok=True)
        return PooledSqliteDatabase(
            name,
            **pool,
            field_types={'JSON': 'TEXT'},
            # WAL lets readers work beside the writer; busy_timeout waits out other writers.
            pragmas={'journal_mode': 'wal', 'busy_timeout': 10000, 'synchronous': 'normal'},
            check_same_thread=False,
        )
    options.setdefault('connect_timeout', CONNECT_TIMEOUT)
    # A server gone without a reset would hold a worker thread until the kernel gives up
    # (about 15 minutes): give up on unacknowledged data after 30 s instead.
    options.setdefault('tcp_user_timeout', TCP_USER_TIMEOUT_MS)
    return PooledPostgresqlDatabase(name, **pool, field_types={'JSON': 'JSONB'}, **options)


def _parameter(field: peewee.Field, stored: Stored) -> Parameter:
    """What the upsert binds for `field` in a new row: times in naive UTC, a count of 1, the
    request as the JSON text `build_record` encoded once."""
    name = field.name
    if stored.kind == TIME:
        return lambda record: field.db_value(_naive_utc(getattr(record, name)))
    if stored.kind == COUNT:
        return lambda record: field.db_value(1)
    if stored.kind == JSON and name == 'request':
        return lambda record: field.db_value(
            EncodedJSON(record.request_json) if record.request_json else record.request)
    return lambda record: field.db_value(getattr(record, name))


def _to_record(row: Any, fields: Tuple[Tuple[str, Stored], ...] = STORED_FIELDS) -> EventRecord:
    """The record of a row that holds `fields` (the others keep their defaults)."""
    return EventRecord(**{
        name: _aware_utc(getattr(row, name)) if stored.kind == TIME else getattr(row, name)
        for name, stored in fields
    })


def _naive_utc(moment: datetime) -> datetime:
    """Columns hold naive UTC: SQLite has no time zone type."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _aware_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc)
