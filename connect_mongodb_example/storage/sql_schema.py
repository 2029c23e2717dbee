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
    postgres = isinstance(database, peewee.PostgresqlDatabase)
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
