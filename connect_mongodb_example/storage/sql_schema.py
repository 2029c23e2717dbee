"""The SQL schema, its version and its migrations."""
import json
from datetime import datetime, timezone
from typing import Any, Callable, List, Tuple

import peewee
from playhouse import migrate as playhouse_migrate

from connect_mongodb_example.event_record import STORED_FIELDS
from connect_mongodb_example.record_fields import COUNT, TEXT, TIME, Stored

EVENTS_TABLE = 'connect_events'
VERSION_TABLE = 'connect_events_schema'
INSTALLATIONS_TABLE = 'connect_installations'
#: The PostgreSQL advisory lock taken while migrating (any constant; it is per database).
MIGRATION_LOCK_ID = 0x636F6E6E656374  # 'connect' in ASCII


class EncodedJSON(str):
    """Text that is JSON already (`EventRecord.request_json`): stored without encoding again."""


class JSONField(peewee.Field):
    """JSONB on PostgreSQL, TEXT on SQLite (each database maps the 'JSON' type itself)."""

    field_type = 'JSON'

    def db_value(self, value: Any) -> Any:
        if value is None or isinstance(value, EncodedJSON):
            return value
        return json.dumps(value, separators=(',', ':'))

    def python_value(self, value: Any) -> Any:
        # psycopg2 already decodes JSONB; SQLite hands back the text.
        return json.loads(value) if isinstance(value, (str, bytes)) else value


#: Longest value of each text column (PostgreSQL enforces them; checked before any write).
COLUMN_LENGTHS = {name: stored.length for name, stored in STORED_FIELDS if stored.kind == TEXT}


def _column(stored: Stored) -> peewee.Field:
    if stored.kind == TEXT:
        return peewee.CharField(max_length=stored.length, null=stored.nullable)
    if stored.kind == TIME:
        # Naive UTC: SQLite has no time zone type. A new row sets every time.
        return peewee.DateTimeField()
    if stored.kind == COUNT:
        return peewee.IntegerField(default=1)
    return JSONField(null=stored.nullable)


def event_model(database: peewee.Database) -> Any:
    """The events table bound to `database` (a class per database, so stores never share
    one), a column per stored field of `EventRecord`."""
    columns = {'id': peewee.BigAutoField()}
    columns.update((name, _column(stored)) for name, stored in STORED_FIELDS)
    options = type('Meta', (), {'table_name': EVENTS_TABLE})
    model: Any = type('Event', (peewee.Model,), {
        **columns, 'Meta': options, '__module__': __name__,
    })
    model._meta.set_database(database)
    # Explicit index names: peewee would derive them from the model, and create_tables
    # silently skips an index whose name another table's index already took.
    model.add_index(peewee.ModelIndex(
        model, (model.key,), unique=True, name='connect_events_idempotency_key_uniq',
    ))
    model.add_index(peewee.ModelIndex(
        model, (model.request_id, model.installation_id),
        name='connect_events_request_installation_idx',
    ))
    return model


def counts_model(database: peewee.Database) -> Any:
    """The counts the triggers of migration 3 keep, for reading (see "counts" below)."""

    class EventCount(peewee.Model):
        installation_id = peewee.CharField()
        status = peewee.CharField()
        shard = peewee.SmallIntegerField()
        events = peewee.BigIntegerField()

        class Meta:
            table_name = COUNTS_TABLE
            primary_key = peewee.CompositeKey('installation_id', 'status', 'shard')

    EventCount._meta.set_database(database)
    return EventCount


def installation_model(database: peewee.Database) -> Any:
    """The installations table bound to `database`: a column per field of
    `InstallationRecord`, times in naive UTC like the events'."""

    class Installation(peewee.Model):
        installation_id = peewee.CharField(max_length=COLUMN_LENGTHS['installation_id'],
                                           primary_key=True)
        status = peewee.CharField(max_length=32)
        changed_at = peewee.DateTimeField()
        account_id = peewee.CharField(max_length=COLUMN_LENGTHS['account_id'], null=True)
        environment_id = peewee.CharField(max_length=128, null=True)
        purge_after = peewee.DateTimeField(null=True)
        purged_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = INSTALLATIONS_TABLE

    Installation._meta.set_database(database)
    return Installation


def version_model(database: peewee.Database) -> Any:

    class SchemaVersion(peewee.Model):
        version = peewee.IntegerField(primary_key=True)
        applied_at = peewee.DateTimeField()

        class Meta:
            table_name = VERSION_TABLE

    SchemaVersion._meta.set_database(database)
    return SchemaVersion


def _create_events_table(database: peewee.Database) -> None:
    database.create_tables([event_model(database)], safe=True)


def _add_read_indexes(database: peewee.Database) -> None:
    """One installation's events newest first, all of them or of one status: a page and its
    count read only the index entries they need, however many events others have.
    Written out rather than derived from the model, so that this migration never changes."""
    for name, columns in (
        ('connect_events_installation_recent_idx', 'installation_id, last_received_at DESC, key'),
        ('connect_events_installation_status_recent_idx',
         'installation_id, status, last_received_at DESC, key'),
    ):
        database.execute_sql(f'CREATE INDEX IF NOT EXISTS {name} ON {EVENTS_TABLE} ({columns})')


# -- counts -------------------------------------------------------------------------------
# Counting a million index entries takes over 100 ms on SQLite and PostgreSQL, and every page
# shows the total. So a trigger adds one to a row of the counts for every new event (a
# redelivery updates its event: no insert) and takes one off for a deleted one, and a count
# reads a few hundred small rows at most. On PostgreSQL each connection adds to its own shard
# of the row, so that concurrent writers of one installation do not queue on one row lock.
# Events without an installation are not counted: no read can ask for them.
COUNTS_TABLE = 'connect_events_counts'
# PostgreSQL: writers spread over this many rows per installation and status.
SHARDS = 16

_CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {COUNTS_TABLE} (
    installation_id VARCHAR(128) NOT NULL,
    status VARCHAR(32) NOT NULL,
    shard SMALLINT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (installation_id, status, shard)
)"""
# Only into an empty table: a process that ran this migration at the same time as another
# (both saw it missing) must not count the events twice. (Table names are constants: S608.)
_BACKFILL = f"""
INSERT INTO {COUNTS_TABLE} (installation_id, status, shard, events)
SELECT installation_id, status, 0, COUNT(*) FROM {EVENTS_TABLE}
WHERE installation_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {COUNTS_TABLE})
GROUP BY installation_id, status"""  # noqa: S608
_ADD = (f'INSERT INTO {COUNTS_TABLE} (installation_id, status, shard, events) '  # noqa: S608
        'VALUES ({row}.installation_id, {row}.status, {shard}, {delta}) '
        'ON CONFLICT (installation_id, status, shard) '
        f'DO UPDATE SET events = {COUNTS_TABLE}.events + {{delta}}')

_POSTGRES_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {COUNTS_TABLE}_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.installation_id IS NOT NULL THEN
            {_ADD.format(row='NEW', shard=f'mod(pg_backend_pid(), {SHARDS})', delta=1)};
        END IF;
    ELSIF OLD.installation_id IS NOT NULL THEN
        {_ADD.format(row='OLD', shard=f'mod(pg_backend_pid(), {SHARDS})', delta=-1)};
    END IF;
    RETURN NULL;
END $$"""
_POSTGRES_TRIGGER = (f'CREATE TRIGGER {COUNTS_TABLE}_keep AFTER INSERT OR DELETE ON {EVENTS_TABLE} '
                     f'FOR EACH ROW EXECUTE FUNCTION {COUNTS_TABLE}_keep()')
_SQLITE_TRIGGERS = tuple(
    f'CREATE TRIGGER IF NOT EXISTS {COUNTS_TABLE}_{operation.lower()} AFTER {operation} '
    f'ON {EVENTS_TABLE} WHEN {row}.installation_id IS NOT NULL BEGIN '
    f'{_ADD.format(row=row, shard=0, delta=delta)}; END'
    for operation, row, delta in (('INSERT', 'NEW', 1), ('DELETE', 'OLD', -1))
)


def _add_counts(database: peewee.Database) -> None:
    """The migration that creates the counts, counts the events stored so far and installs
    the triggers; run in one transaction, with writes to the events held off meanwhile."""
    postgres = _postgres(database)
    if postgres:
        # SQLite's first write already locks the whole database.
        database.execute_sql(f'LOCK TABLE {EVENTS_TABLE} IN SHARE ROW EXCLUSIVE MODE')
    database.execute_sql(_CREATE_TABLE)
    database.execute_sql(_BACKFILL)
    if postgres:
        database.execute_sql(_POSTGRES_FUNCTION)
        database.execute_sql(f'DROP TRIGGER IF EXISTS {COUNTS_TABLE}_keep ON {EVENTS_TABLE}')
        database.execute_sql(_POSTGRES_TRIGGER)
    else:
        for trigger in _SQLITE_TRIGGERS:
            database.execute_sql(trigger)


# -- pages by first receipt, and deletes by age -------------------------------------------
# Pages list events newest first by `received_at` (which no redelivery changes), then by key.
# On PostgreSQL the key is ordered with the "C" collation: byte order, the order of SQLite,
# MongoDB and Python (a locale such as en_US orders keys otherwise), and immune to the locale
# changes of an OS upgrade that silently corrupt indexes on text.
#: How a page orders keys on PostgreSQL (SQLite's default, BINARY, is that order already).
POSTGRES_KEY_COLLATION = '"C"'
# Deleting every installation's events older than a cutoff (retention) needs an index that
# starts with `received_at`: without one each batch scans the table, and walking the
# installations' read indexes one by one costs a probe per installation per batch. It costs
# every write about 4% on PostgreSQL and 10% on SQLite (8,000 upserts with and without it,
# one rough run). A plain one would cost reads far more: PostgreSQL picked it for the first
# page of an installation whose 60,000 events were all older than the others' 140,000,
# and scanned those 140,000 to find 20 (it cannot know that installation and time go
# together). So the index is partial, on a predicate every row meets and only those deletes
# state: a planner uses a partial index only for a query that implies its predicate, so no
# page can be read through it.
#: The age index's predicate: ids start at 1 and never change (a redelivery stays a HOT
#: update on PostgreSQL, which a predicate on a changing column would prevent).
AGE_INDEX_PREDICATE = 'id > 0'
AGE_INDEX = 'connect_events_received_idx'


def _index_by_first_receipt(database: peewee.Database) -> None:
    """The read indexes in page order (one installation's events, all or of one status):
    a page at any depth, from a cursor, reads only its own entries. The indexes of migration
    2 go: nothing reads by `last_received_at` any more, and each index costs every write.
    Plus the index that deletes by age read (see above). Written out rather than derived
    from the model; the collation and the predicate are the ones the queries state."""
    key = f'key COLLATE {POSTGRES_KEY_COLLATION}' if _postgres(database) else 'key'
    for name, columns in (
        ('connect_events_installation_received_idx',
         f'installation_id, received_at DESC, {key} DESC'),
        ('connect_events_installation_status_received_idx',
         f'installation_id, status, received_at DESC, {key} DESC'),
    ):
        database.execute_sql(f'CREATE INDEX IF NOT EXISTS {name} ON {EVENTS_TABLE} ({columns})')
    database.execute_sql(f'CREATE INDEX IF NOT EXISTS {AGE_INDEX} ON {EVENTS_TABLE} '
                         f'(received_at) WHERE {AGE_INDEX_PREDICATE}')
    for name in ('connect_events_installation_recent_idx',
                 'connect_events_installation_status_recent_idx'):
        database.execute_sql(f'DROP INDEX IF EXISTS {name}')


def _create_installations_table(database: peewee.Database) -> None:
    database.create_tables([installation_model(database)], safe=True)


# PostgreSQL takes deleted events off the counts once per statement, by installation and
# status in order: two jobs deleting batches at once then lock the rows of the counts they
# share in the same order (row by row, in the order the events went, they could deadlock),
# and a batch of a thousand events costs a few upserts instead of a thousand. SQLite keeps
# its row triggers: its writers never overlap.
_POSTGRES_INSERT_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {COUNTS_TABLE}_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.installation_id IS NOT NULL THEN
        {_ADD.format(row='NEW', shard=f'mod(pg_backend_pid(), {SHARDS})', delta=1)};
    END IF;
    RETURN NULL;
END $$"""
_POSTGRES_DELETE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {COUNTS_TABLE}_take_off() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {COUNTS_TABLE} (installation_id, status, shard, events)
    SELECT installation_id, status, mod(pg_backend_pid(), {SHARDS}), -COUNT(*) FROM gone
    WHERE installation_id IS NOT NULL
    GROUP BY installation_id, status ORDER BY installation_id, status
    ON CONFLICT (installation_id, status, shard)
    DO UPDATE SET events = {COUNTS_TABLE}.events + excluded.events;
    RETURN NULL;
END $$"""  # noqa: S608 - table names are constants


def _count_deletes(database: peewee.Database) -> None:
    if not _postgres(database):
        return
    # Writes wait meanwhile: no event goes uncounted between the two triggers.
    database.execute_sql(f'LOCK TABLE {EVENTS_TABLE} IN SHARE ROW EXCLUSIVE MODE')
    database.execute_sql(_POSTGRES_INSERT_FUNCTION)
    database.execute_sql(_POSTGRES_DELETE_FUNCTION)
    database.execute_sql(f'DROP TRIGGER IF EXISTS {COUNTS_TABLE}_keep ON {EVENTS_TABLE}')
    database.execute_sql(
        f'CREATE TRIGGER {COUNTS_TABLE}_keep AFTER INSERT ON {EVENTS_TABLE} '
        f'FOR EACH ROW EXECUTE FUNCTION {COUNTS_TABLE}_keep()')
    database.execute_sql(
        f'CREATE TRIGGER {COUNTS_TABLE}_take_off AFTER DELETE ON {EVENTS_TABLE} '
        f'REFERENCING OLD TABLE AS gone FOR EACH STATEMENT '
        f'EXECUTE FUNCTION {COUNTS_TABLE}_take_off()')


def _postgres(database: peewee.Database) -> bool:
    return isinstance(database, peewee.PostgresqlDatabase)


def add_column(name: str) -> Callable[[peewee.Database], None]:
    """The migration that adds the column of a field added to `EventRecord`. A database
    created after the field was added has it already (the first migration creates the
    table as the record is now): then there is nothing to do."""

    def migrate(database: peewee.Database) -> None:
        if name in {column.name for column in database.get_columns(EVENTS_TABLE)}:
            return
        field = event_model(database)._meta.fields[name]
        playhouse_migrate.migrate(
            playhouse_migrate.SchemaMigrator.from_database(database).add_column(
                EVENTS_TABLE, name, field),
        )

    return migrate


#: (version, migration). Append to change the schema; never edit an applied migration. They
#: run in one transaction under the migration lock (see `ensure_schema`), so a statement that
#: cannot run in a transaction (CREATE INDEX CONCURRENTLY) does not belong here.
MIGRATIONS: List[Tuple[int, Callable[[peewee.Database], None]]] = [
    (1, _create_events_table),
    (2, _add_read_indexes),
    (3, _add_counts),
    (4, _index_by_first_receipt),
    (5, _create_installations_table),
    (6, _count_deletes),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def ensure_schema(database: peewee.Database) -> int:
    """Apply the migrations this database lacks; safe from any number of processes at once.

    Every process takes the same lock before it reads the version, so one migrates while
    the others wait and then find the work done: `CREATE TABLE IF NOT EXISTS` alone races
    in PostgreSQL (two sessions both pass the check, one fails on the catalog's unique
    index). PostgreSQL: an advisory lock held until the transaction ends; SQLite: the
    database's write lock (BEGIN IMMEDIATE).
    """
    postgres = _postgres(database)
    with database.atomic() if postgres else database.atomic(lock_type='IMMEDIATE'):
        if postgres:
            database.execute_sql('SELECT pg_advisory_xact_lock(%s)', (MIGRATION_LOCK_ID,))
        versions = version_model(database)
        database.create_tables([versions], safe=True)
        current = versions.select(peewee.fn.MAX(versions.version)).scalar() or 0
        for version, migrate in MIGRATIONS:
            if version <= current:
                continue
            migrate(database)
            versions.insert(
                version=version, applied_at=datetime.now(timezone.utc).replace(tzinfo=None),
            ).execute()
    return SCHEMA_VERSION
