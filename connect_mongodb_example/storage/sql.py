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
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, List, Optional, Tuple, TypeVar
from urllib.parse import unquote, urlsplit

import peewee
from playhouse.db_url import parse as parse_db_url

from connect_mongodb_example.errors import (
    ConfigurationError,
    InvalidRequest,
    StorageUnavailable,
    first_line,
)
from connect_mongodb_example.event_record import STORED_FIELDS, EventRecord
from connect_mongodb_example.installation_record import InstallationRecord
from connect_mongodb_example.record_fields import COUNT, INCREMENT, JSON, LATEST, TIME, Stored
from connect_mongodb_example.redaction import redact_url
from connect_mongodb_example.storage.base import EventFilter, EventStore, PageCursor
from connect_mongodb_example.storage.idle import STORAGE_IDLE_SECONDS, idle_seconds
from connect_mongodb_example.storage.sql_errors import configuration_problem
from connect_mongodb_example.storage.sql_pool import (
    IdleClosingPostgresqlDatabase,
    IdleClosingSqliteDatabase,
)
from connect_mongodb_example.storage.sql_schema import (
    AGE_INDEX_PREDICATE,
    COLUMN_LENGTHS,
    EVENTS_TABLE,
    POSTGRES_KEY_COLLATION,
    EncodedJSON,
    counts_model,
    ensure_schema,
    event_model,
    installation_model,
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
    'Most connections (and worker threads) the SQL backend opens per process; those resting '
    'longer than `STORAGE_IDLE_SECONDS` are closed.',
    default='8',
)
SQLITE_SCHEMES = ('sqlite',)
POSTGRES_SCHEMES = ('postgres', 'postgresql')
# Seconds to wait for a PostgreSQL connection, unless the URL sets connect_timeout itself.
CONNECT_TIMEOUT = 5
TCP_USER_TIMEOUT_MS = 30_000
SQLITE_DELETE_BATCH = 100
POSTGRES_DELETE_BATCH = 500


@dataclass(frozen=True)
class SqlSettings:
    url: str
    pool_size: int
    idle_seconds: float = float(STORAGE_IDLE_SECONDS.default)


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
            idle_seconds=idle_seconds(reader),
        )

    def __init__(self, settings: SqlSettings):
        self._settings = settings
        self._executor = ThreadPoolExecutor(settings.pool_size, thread_name_prefix='sql-store')
        self._open_lock = threading.Lock()
        self._database: Optional[peewee.Database] = None
        self._model: Any = None
        self._installations: Any = None
        self._upsert: Tuple[str, Tuple[Parameter, ...], Tuple[Any, ...]] = ('', (), ())
        # Logged with every stored event: worked out once.
        self._description = f'sql ({redact_url(settings.url)})'
        self._postgres = urlsplit(settings.url).scheme.lower() in POSTGRES_SCHEMES

    def describe(self) -> str:
        return self._description

    @property
    def delete_batch(self) -> int:
        # On SQLite every write waits for each delete (one write lock per database): 100
        # keeps other installations' write p99 within 2x during a purge, where 500 gave
        # 4.7x (docs/performance.md). PostgreSQL locks only the deleted rows.
        return POSTGRES_DELETE_BATCH if self._postgres else SQLITE_DELETE_BATCH

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
        self,
        where: EventFilter,
        *,
        limit: int,
        after: Optional[PageCursor] = None,
        before: Optional[PageCursor] = None,
        offset: int = 0,
        full: bool = False,
    ) -> List[EventRecord]:
        # SQLite reads a negative LIMIT as none at all, PostgreSQL refuses it: neither, here.
        _check_not_negative(limit=limit, offset=offset)
        return await self._call(self._list, where, limit, after, before, offset, full)

    async def count_events(self, where: EventFilter) -> int:
        return await self._call(self._count, where)

    async def save_installation(self, installation: InstallationRecord) -> InstallationRecord:
        return await self._call(self._save_installation, installation)

    async def get_installation(self, installation_id: str) -> Optional[InstallationRecord]:
        return await self._call(self._get_installation, installation_id)

    async def list_installations(self) -> List[InstallationRecord]:
        return await self._call(self._list_installations)

    async def delete_events(
        self,
        *,
        limit: int,
        installation_id: Optional[str] = None,
        received_before: Optional[datetime] = None,
    ) -> int:
        if installation_id is None and received_before is None:
            raise InvalidRequest('a delete names the installation or a time (or both): '
                                 'never every event at once')
        _check_not_negative(limit=limit)
        return await self._call(self._delete, limit, installation_id, received_before)

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
            return self._with_connection(function, *args)
        except peewee.DataError as error:
            # SQLSTATE class 22 (data exception): this row can never be written, or a
            # caller's number is past what the database takes (bigint out of range).
            raise InvalidRequest(f'{self.describe()}: {first_line(error)}') from error
        except OverflowError as error:
            # On purpose: SQLite's driver binds no integer past 2**63-1 (a limit or an offset
            # a caller sent). Never the database's fault, never worth a retry.
            raise InvalidRequest(
                f'{self.describe()}: a number is out of range: {first_line(error)}',
            ) from error
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
            raise StorageUnavailable(f'{self.describe()}: {first_line(error)}') from error

    def _with_connection(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function` on this worker thread's connection, which it keeps between calls
        until it has been unused for STORAGE_IDLE_SECONDS (see sql_pool)."""
        database = self._database
        with database.lease():
            try:
                return function(*args)
            except (peewee.OperationalError, peewee.InterfaceError):
                # The connection may be broken (server restarted): drop it, not keep it.
                database.manual_close()
                raise

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
            self._installations = installation_model(database)
            # Last: other threads take a set model to mean the store is ready.
            self._model = model
            logger.info('SQL storage ready: %s', self.describe())

    def _save(self, record: EventRecord) -> int:
        sql, parameters, tail = self._upsert
        params = tuple(parameter(record) for parameter in parameters) + tail
        # One statement, atomic on its own: peewee runs in autocommit mode, so no BEGIN/COMMIT.
        return self._database.execute_sql(sql, params).fetchone()[0]

    def _find(self, request_id: str, installation_id: Optional[str]) -> List[EventRecord]:
        if not (_holdable(request_id, 'request_id')
                and _holdable(installation_id, 'installation_id')):
            return []
        model = self._model
        query = model.select().where(model.request_id == request_id)
        if installation_id is not None:
            query = query.where(model.installation_id == installation_id)
        return [_to_record(row) for row in query.order_by(model.received_at, model.id)]

    def _list(
        self, where: EventFilter, limit: int, after: Optional[PageCursor],
        before: Optional[PageCursor], offset: int, full: bool,
    ) -> List[EventRecord]:
        if not _could_match(where):
            return []
        model = self._model
        key = self._binary(model.key)
        fields_read = STORED_FIELDS if full else PAGE_FIELDS
        columns = [getattr(model, name) for name, _ in fields_read]
        # The nearest newer events (before a cursor): read towards the newer ones, then
        # turned around.
        order = ((model.received_at.asc(), key.asc()) if before is not None
                 else (model.received_at.desc(), key.desc()))
        # Row values, as the read indexes order them: SQLite and PostgreSQL both start the
        # index scan at the cursor, so that a page at any depth costs what the first does.
        place = peewee.Tuple(model.received_at, key)
        query = self._matching(model.select(*columns) if not offset else
                               model.select(model.key), where)
        if after is not None:
            query = query.where(place < self._place(after))
        if before is not None:
            query = query.where(place > self._place(before))
        query = query.order_by(*order).limit(limit).offset(offset)
        if offset:
            # A deferred join: the skipped rows are read from the read index alone (the key
            # is in it), and only the page's rows from the table. Skipping whole rows made
            # PostgreSQL fetch every one of them, or sort the status's rows (docs/performance.md).
            query = model.select(*columns).where(model.key.in_(query)).order_by(*order)
        rows = [_to_record(row, fields_read) for row in query]
        return rows[::-1] if before is not None else rows

    def _place(self, cursor: PageCursor) -> peewee.Tuple:
        """The cursor's place as the columns hold it: its time in naive UTC, bound as a saved
        time is (SQLite compares the text: both must be written alike)."""
        if not _holdable(cursor.key):
            raise InvalidRequest(f'{self.describe()}: a page cursor whose key holds NUL or an '
                                 'unpaired surrogate, which no stored key does')
        received_at = self._model.received_at.db_value(_naive_utc(cursor.received_at))
        return peewee.Tuple(received_at, cursor.key)

    def _count(self, where: EventFilter) -> int:
        if not _could_match(where):
            return 0
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

    def _binary(self, column: peewee.Field) -> Any:
        """`column` ordered by code point, as the read indexes order keys (see sql_schema)."""
        return column.collate(POSTGRES_KEY_COLLATION) if self._postgres else column

    def _save_installation(self, installation: InstallationRecord) -> InstallationRecord:
        self._check_installation(installation)
        model = self._installations
        values = {name: _naive_utc(value) if isinstance(value, datetime) else value
                  for name, value in _installation_fields(installation)}
        # One statement, atomic from any number of processes: the stored record changes only
        # for a change as late or later. RETURNING gives nothing when the WHERE kept the row.
        query = model.insert(values).on_conflict(
            conflict_target=[model.installation_id],
            preserve=[getattr(model, name) for name in values if name != 'installation_id'],
            where=model.changed_at <= peewee.EXCLUDED.changed_at,
        ).returning(*model._meta.sorted_fields)
        for row in query.execute():
            return _to_installation(row)
        return self._get_installation(installation.installation_id)

    def _check_installation(self, installation: InstallationRecord) -> None:
        """What PostgreSQL would refuse (and SQLite keep): refused on both."""
        for name, value in _installation_fields(installation):
            if not isinstance(value, str):
                continue
            longest = getattr(self._installations, name).max_length
            if not _holdable(value, longest=longest):
                raise InvalidRequest(
                    f'{self.describe()}: {name} of installation '
                    f'{installation.installation_id[:128]!r} is over {longest} characters or '
                    'holds NUL or an unpaired surrogate')

    def _get_installation(self, installation_id: str) -> Optional[InstallationRecord]:
        if not _holdable(installation_id, 'installation_id'):
            return None
        model = self._installations
        row = model.get_or_none(model.installation_id == installation_id)
        return None if row is None else _to_installation(row)

    def _list_installations(self) -> List[InstallationRecord]:
        model = self._installations
        return [_to_installation(row)
                for row in model.select().order_by(self._binary(model.installation_id))]

    def _delete(
        self, limit: int, installation_id: Optional[str], received_before: Optional[datetime],
    ) -> int:
        """One batch: the rows are picked by an index (the installation's read index, or the
        age index for every installation's), oldest first, and deleted by their ids in one
        statement; the triggers take them off the counts in the same transaction."""
        if limit == 0 or not _holdable(installation_id, 'installation_id'):
            return 0
        param = self._database.param
        conditions, params = [], []
        if installation_id is not None:
            conditions.append(f'installation_id = {param}')
            params.append(installation_id)
        else:
            conditions.append(AGE_INDEX_PREDICATE)
        if received_before is not None:
            conditions.append(f'received_at < {param}')
            params.append(self._model.received_at.db_value(_naive_utc(received_before)))
        # (Table names and conditions are constants, values are parameters: S608.)
        statement = (f'DELETE FROM {EVENTS_TABLE} WHERE id IN (SELECT id FROM {EVENTS_TABLE} '  # noqa: S608
                     f'WHERE {" AND ".join(conditions)} ORDER BY received_at '
                     f'LIMIT {param}{{lock}})')
        params.append(limit)
        if not self._postgres:
            # SQLite: each statement takes the database's write lock; other deleters wait
            # (busy_timeout) and then pick among the rows left.
            return self._database.execute_sql(statement.format(lock=''), params).rowcount
        # PostgreSQL: rows another deleter holds are skipped, so that two deleters take two
        # batches instead of one waiting to find its batch gone...
        deleted = self._database.execute_sql(
            statement.format(lock=' FOR UPDATE SKIP LOCKED'), params).rowcount
        if deleted:
            return deleted
        # ...and when every matching row is held, this waits for the holders to finish and
        # deletes what they left (their rows, had they rolled back): 0 means none match.
        return self._database.execute_sql(statement.format(lock=' FOR UPDATE'), params).rowcount

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
            # The later of the two: concurrent deliveries commit in any order.
            delivered = getattr(peewee.EXCLUDED, name)
            update[column] = peewee.Case(
                None, [((column.is_null()) | (delivered > column), delivered)], column)
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
    pool = {'max_connections': settings.pool_size, 'stale_timeout': 300, 'timeout': 30,
            'idle_seconds': settings.idle_seconds}
    if scheme in SQLITE_SCHEMES:
        directory = os.path.dirname(name)
        if directory:
            os.makedirs(directory, exist_ok=True)
        return IdleClosingSqliteDatabase(
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
    return IdleClosingPostgresqlDatabase(name, **pool, field_types={'JSON': 'JSONB'}, **options)


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


def _installation_fields(installation: InstallationRecord) -> Iterable[Tuple[str, Any]]:
    return ((field.name, getattr(installation, field.name)) for field in fields(installation))


def _to_installation(row: Any) -> InstallationRecord:
    return InstallationRecord(**{
        field.name: _aware_utc(value) if isinstance(value, datetime) else value
        for field in fields(InstallationRecord)
        for value in (getattr(row, field.name),)
    })


def _holdable(value: Optional[str], column: Optional[str] = None, longest: int = 0) -> bool:
    """Whether a text column (`column` of the events, else one of `longest` characters, any
    length when 0) could hold `value`; None is no condition.

    Text no column holds (longer than the column, NUL, a lone surrogate) matches no stored
    row: a read answers nothing rather than send it, which PostgreSQL refuses (NUL, too long)
    and neither driver can encode (a lone surrogate).
    """
    if value is None:
        return True
    longest = COLUMN_LENGTHS[column] if column else longest
    if not isinstance(value, str) or '\x00' in value or (longest and len(value) > longest):
        return False
    try:
        value.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


def _could_match(where: EventFilter) -> bool:
    return all(_holdable(getattr(where, name), name)
               for name in ('installation_id', 'status', 'request_id'))


def _check_not_negative(**numbers: int) -> None:
    for name, number in numbers.items():
        if number < 0:
            raise InvalidRequest(f'{name} must be 0 or more, got {number}')


def _naive_utc(moment: datetime) -> datetime:
    """Columns hold naive UTC: SQLite has no time zone type. A naive time is UTC already."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _aware_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc)
