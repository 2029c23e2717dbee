"""SQL databases as the tests find or leave them: one at the first schema version, and
what a statement returns (SQLite or PostgreSQL alike, through peewee's URLs)."""
from datetime import datetime
from typing import Iterable, List

from playhouse.db_url import connect as connect_url

from connect_mongodb_example.event_record import STORED_FIELDS, EventRecord
from connect_mongodb_example.record_fields import TIME
from connect_mongodb_example.storage.sql_schema import MIGRATIONS, event_model, version_model


def first_version_with_events(url: str, records: Iterable[EventRecord]) -> None:
    """A database as the extension's first schema version left it, holding `records`."""
    database = connect_url(url)
    with database.connection_context():
        if url.startswith('sqlite'):
            # As the extension leaves every SQLite database: switching one to WAL needs the
            # whole database, which the processes racing to migrate it would hold in turn.
            database.execute_sql('PRAGMA journal_mode=wal')
        versions = version_model(database)
        database.create_tables([versions])
        version, migrate = MIGRATIONS[0]
        migrate(database)
        versions.insert(version=version, applied_at=datetime(2026, 1, 1)).execute()
        model = event_model(database)
        for record in records:
            model.insert(**{
                name: getattr(record, name).replace(tzinfo=None) if stored.kind == TIME
                else getattr(record, name) for name, stored in STORED_FIELDS
            }).execute()
    database.close()


def sql(url: str, statement: str) -> List[tuple]:
    """The rows `statement` returns."""
    database = connect_url(url)
    with database.connection_context():
        rows = database.execute_sql(statement).fetchall()
    database.close()
    return [tuple(row) for row in rows]
