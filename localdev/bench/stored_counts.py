"""Events per installation as the database counts them, row by row: the check that a purge
deleted one installation's events and no other's does not trust the counts the triggers keep
(`count_events`), which it compares them with."""
import sqlite3
from typing import Dict

import psycopg2

from connect_mongodb_example.storage.sql_schema import EVENTS_TABLE

_COUNT = f'SELECT installation_id, COUNT(*) FROM {EVENTS_TABLE} GROUP BY installation_id'  # noqa: S608 - a constant


def stored_counts(url: str) -> Dict[str, int]:
    """installation id -> rows, in the SQLite or PostgreSQL database of `url`."""
    if url.startswith('sqlite:'):
        connection = sqlite3.connect(url.split(':///', 1)[1])
        try:
            return dict(connection.execute(_COUNT).fetchall())
        finally:
            connection.close()
    connection = psycopg2.connect(url, connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute(_COUNT)
            return dict(cursor.fetchall())
    finally:
        connection.close()
