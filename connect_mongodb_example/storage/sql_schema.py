"""The SQL schema, its version and its migrations."""
import json
from datetime import datetime, timezone
from typing import Any, Callable, List, Tuple

import peewee

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
COLUMN_LENGTHS = {
    'key': 512, 'request_id': 128, 'status': 32, 'updated': 64, 'event_type': 128,
    'asset_id': 128, 'product_id': 128, 'installation_id': 128, 'account_id': 128,
}


def event_model(database: peewee.Database) -> Any:
    """The events table bound to `database` (a class per database, so stores never share one)."""

    class Event(peewee.Model):
        id = peewee.BigAutoField()
        key = peewee.CharField(max_length=COLUMN_LENGTHS['key'])
        request_id = peewee.CharField(max_length=COLUMN_LENGTHS['request_id'])
        status = peewee.CharField(max_length=COLUMN_LENGTHS['status'])
        updated = peewee.CharField(max_length=COLUMN_LENGTHS['updated'])
        event_type = peewee.CharField(max_length=COLUMN_LENGTHS['event_type'])
        asset_id = peewee.CharField(max_length=COLUMN_LENGTHS['asset_id'], null=True)
        product_id = peewee.CharField(max_length=COLUMN_LENGTHS['product_id'], null=True)
        installation_id = peewee.CharField(max_length=COLUMN_LENGTHS['installation_id'], null=True)
        account_id = peewee.CharField(max_length=COLUMN_LENGTHS['account_id'], null=True)
        received_at = peewee.DateTimeField()
        last_received_at = peewee.DateTimeField()
        delivery_count = peewee.IntegerField(default=1)
        request = JSONField()

        class Meta:
            table_name = EVENTS_TABLE

    Event._meta.set_database(database)
    # Explicit index names: peewee would derive them from the model, and create_tables
    # silently skips an index whose name another table's index already took.
    Event.add_index(peewee.ModelIndex(
        Event, (Event.key,), unique=True, name='connect_events_idempotency_key_uniq',
    ))
    Event.add_index(peewee.ModelIndex(
        Event, (Event.request_id, Event.installation_id),
        name='connect_events_request_installation_idx',
    ))
    return Event


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
