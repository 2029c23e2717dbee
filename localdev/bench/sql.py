"""SQL baselines: the statement the extension sends, run by the bare driver.

The upsert is not written here: it is captured from the extension itself (peewee logs every
statement at DEBUG), so the raw driver runs exactly what the handler runs. Both sides use a
pool of the same size and as many worker threads, like the `sql` backend.
"""
import asyncio
import json
import logging
import os
import queue
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, List, Tuple

import psycopg2
from peewee import __version__ as peewee_version

from connect_mongodb_example.redaction import redact_url
from connect_mongodb_example.storage.sql_schema import EVENTS_TABLE
from localdev.bench.workloads import EventFactory, HandlerWork

Connect = Callable[[], Any]
SQLITE_PRAGMAS = ('PRAGMA journal_mode=wal', 'PRAGMA busy_timeout=10000',
                  'PRAGMA synchronous=normal')
# The local server of CONTEXT.md (trust authentication on loopback).
LOCAL_POSTGRES = 'postgresql://postgres@127.0.0.1:5432/postgres'


class _Statements(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: List[Tuple[str, tuple]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, tuple) and len(record.msg) == 2:
            self.seen.append(record.msg)


async def capture_upsert(config: dict, events: EventFactory) -> Tuple[str, List[str], tuple]:
    """(SQL, its column names, the parameters after the VALUES) of one handler save."""
    handler = _Statements()
    peewee_logger = logging.getLogger('peewee')
    level = peewee_logger.level
    peewee_logger.addHandler(handler)
    peewee_logger.setLevel(logging.DEBUG)
    try:
        if not await HandlerWork(config, events)(10**8 - 1):
            raise RuntimeError('the handler could not store the probe event')
    finally:
        peewee_logger.removeHandler(handler)
        peewee_logger.setLevel(level)
    for sql, params in handler.seen:
        match = re.match(rf'INSERT INTO "{EVENTS_TABLE}" \(([^)]*)\) VALUES', sql)
        if match:
            columns = [name.strip().strip('"') for name in match.group(1).split(',')]
            return sql, columns, tuple(params[len(columns):])
    raise RuntimeError(f'no INSERT INTO {EVENTS_TABLE} seen in peewee {peewee_version} logs')


def upsert_parameters(columns: List[str], tail: tuple, events: EventFactory, n: int) -> tuple:
    """The values the backend would bind for event n, in the statement's column order."""
    key, request = events.key_fields(n)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    owner = events.installation['owner']
    values = {
        'key': key, 'request_id': request['id'], 'status': request['status'],
        'updated': request['updated'], 'event_type': 'asset_purchase_request_processing',
        'asset_id': request['asset']['id'], 'product_id': request['asset']['product']['id'],
        'installation_id': events.installation['id'], 'account_id': owner['id'],
        'received_at': now, 'last_received_at': now, 'delivery_count': 1,
        'request': json.dumps(request, separators=(',', ':')),
    }
    return tuple(values[column] for column in columns) + tail


class RawSqlWork:
    """The captured upsert through the bare driver: a pool of `size` connections shared by
    `size` threads, or (`per_event`) a new connection for every event, as the tutorial did."""

    def __init__(self, connect: Connect, sql: str, columns: List[str], tail: tuple,
                 events: EventFactory, size: int, per_event: bool = False):
        self.connect = connect
        self.sql = sql
        self.columns = columns
        self.tail = tail
        self.events = events
        self.per_event = per_event
        self.executor = ThreadPoolExecutor(size, thread_name_prefix='bench-raw-sql')
        self.pool: queue.Queue[Any] = queue.Queue()
        for _ in range(0 if per_event else size):
            self.pool.put(connect())

    async def __call__(self, n: int) -> bool:
        params = upsert_parameters(self.columns, self.tail, self.events, n)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._write, params)

    def _write(self, params: tuple) -> bool:
        with self._connection() as connection:
            cursor = connection.cursor()
            cursor.execute(self.sql, params)
            count = cursor.fetchone()[0]
            cursor.close()
            return count >= 1

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self.per_event:
            connection = self.connect()
            try:
                yield connection
            finally:
                connection.close()
            return
        connection = self.pool.get()
        try:
            yield connection
        finally:
            self.pool.put(connection)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        while not self.pool.empty():
            self.pool.get().close()


def postgres_connector(url: str) -> Connect:
    def connect() -> Any:
        connection = psycopg2.connect(url, connect_timeout=5)
        connection.autocommit = True  # as peewee: one statement, committed on its own
        return connection
    return connect


def sqlite_connector(path: str) -> Connect:
    def connect() -> Any:
        connection = sqlite3.connect(path, timeout=30, check_same_thread=False,
                                     isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            connection.execute(pragma)
        return connection
    return connect


def postgres_version(url: str) -> str:
    connection = psycopg2.connect(url, connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute('SHOW server_version')
            return cursor.fetchone()[0].split()[0]
    finally:
        connection.close()


@contextmanager
def postgres_database() -> Iterator[Tuple[str, str]]:
    """(URL of a fresh database, where it runs): on BENCH_POSTGRES_URL's server, else the
    local server on 127.0.0.1:5432, else a throwaway server; dropped afterwards."""
    # The test suite's helpers: one implementation of "a private PostgreSQL" in the repo.
    from tests.support.postgres import (
        ThrowawayPostgres,
        create_database,
        drop_database,
        server_answers,
    )

    server_url = os.environ.get('BENCH_POSTGRES_URL') or LOCAL_POSTGRES
    throwaway = None
    where = redact_url(server_url)
    if not server_answers(server_url):
        throwaway = ThrowawayPostgres()
        where = 'a throwaway server (fsync off)'
    try:
        if throwaway is not None:
            throwaway.start()
            server_url = throwaway.url()
        url = create_database(server_url)
        try:
            yield url, where
        finally:
            drop_database(server_url, url)
    finally:
        # Also when it failed to start or to create the database: no server left behind.
        if throwaway is not None:
            throwaway.destroy()
