"""Delivering events like the runner does, and reading what was stored straight from the
database (not through the store under test)."""
import sqlite3
from contextlib import closing
from typing import Any, Dict, List, Mapping, Optional, Tuple

import psycopg2

from connect_mongodb_example.storage.sql_schema import EVENTS_TABLE
from tests.support.delivery import deliver  # noqa: F401 - the reliability tests import it from here
from tests.support.records import purchase_record

DATA_API_KEY = 'reliability-data-api-key'


def key_of(request: Mapping[str, Any], installation: Optional[Mapping[str, Any]] = None) -> str:
    """The idempotency key the application gives this event."""
    return purchase_record(request, installation=installation).key


Row = Tuple[str, Optional[str], Optional[str], int]


def postgres_rows(url: str) -> Dict[str, Row]:
    """key -> (request_id, installation_id, account_id, delivery_count), read with psycopg2;
    raises if a key is stored twice, which the unique index should make impossible."""
    with closing(psycopg2.connect(url, connect_timeout=5)) as connection, \
            connection.cursor() as cursor:
        cursor.execute(
            f'SELECT key, request_id, installation_id, account_id, delivery_count '
            f'FROM {EVENTS_TABLE} ORDER BY id')
        return _by_key(cursor.fetchall())


def sqlite_rows(url: str) -> Dict[str, Row]:
    with closing(sqlite3.connect(url[len('sqlite:///'):])) as connection:
        return _by_key(connection.execute(
            f'SELECT key, request_id, installation_id, account_id, delivery_count '
            f'FROM {EVENTS_TABLE} ORDER BY id').fetchall())


def stored_rows(url: str) -> Dict[str, Row]:
    return sqlite_rows(url) if url.startswith('sqlite') else postgres_rows(url)


def _by_key(rows: List[tuple]) -> Dict[str, Row]:
    found: Dict[str, Row] = {}
    for key, *rest in rows:
        assert key not in found, f'{key} is stored twice'
        found[key] = tuple(rest)
    return found


def dataapi_config(server: Any) -> Dict[str, str]:
    """The dataapi backend pointed at a local server. No retries inside the store: each
    delivery is one attempt, so counts are the deliveries' own (retries have their tests)."""
    return {'STORAGE_BACKENDS': 'dataapi', 'DATA_API_URL': server.base_url,
            'DATA_API_KEY': DATA_API_KEY, 'DATA_API_RETRIES': '0'}


def dataapi_counts(server: Any) -> Dict[str, int]:
    """key -> delivery_count, read from the server's collection; fails on a duplicate key."""
    return mongo_counts(server.collection('connect_events', 'events'))


def mongo_counts(collection: Any) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for document in collection.find():
        assert document['key'] not in counts, f'{document["key"]} is stored twice'
        counts[document['key']] = document['delivery_count']
    return counts
