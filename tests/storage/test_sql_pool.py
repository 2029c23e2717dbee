"""The SQL pool follows the load: connections unused for longer than STORAGE_IDLE_SECONDS are
closed, while the process is quiet too; seen from the server (pg_stat_activity) or, for
SQLite, from the file descriptors the process holds."""
import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, ContextManager

import peewee
import pytest

from connect_mongodb_example.storage import sql_pool
from connect_mongodb_example.storage.sql import SqlEventStore, SqlSettings, _connect
from tests.support.connections import open_files, settled
from tests.support.postgres import run_sql
from tests.support.records import purchase_record

APP = 'idle-closing-test'


def server_connections(url: str) -> int:
    """Connections of this test's pools (they carry its application_name) to the server."""
    return run_sql(url, 'SELECT count(*) FROM pg_stat_activity WHERE application_name = %s',
                   (APP,))[0][0]


def named(url: str) -> str:
    return f'{url}?application_name={APP}'


def leased(database: peewee.Database) -> ContextManager:
    """How the store's worker threads use a connection."""
    return database.lease()


def pooled(database: peewee.Database) -> ContextManager:
    """peewee's usual way, as the schema check uses one: back to the pool afterwards."""
    return database.connection_context()


def use_at_once(database: peewee.Database, count: int,
                using: Callable[[peewee.Database], ContextManager] = leased) -> None:
    """`count` connections used together (one per thread)."""
    together = threading.Barrier(count)
    errors = []

    def work() -> None:
        try:
            with using(database):
                database.execute_sql('SELECT 1').fetchone()
                together.wait(timeout=30)
        except Exception as error:  # noqa: BLE001 - re-raised below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def backend_pid(database: peewee.Database,
                using: Callable[[peewee.Database], ContextManager] = leased) -> int:
    with using(database):
        return database.execute_sql('SELECT pg_backend_pid()').fetchone()[0]


@pytest.mark.postgres
@pytest.mark.parametrize('using', [leased, pooled])
def test_connections_unused_longer_than_the_idle_setting_are_closed(postgres_url, using):
    database = _connect(SqlSettings(named(postgres_url), pool_size=4, idle_seconds=2))
    try:
        use_at_once(database, 4, using)
        assert server_connections(postgres_url) == 4
        assert settled(lambda: server_connections(postgres_url), 0) == 0
        assert database.open_connections() == 0
        # Reopened on demand.
        use_at_once(database, 1, using)
        assert server_connections(postgres_url) == 1
    finally:
        database.close_all()
    assert settled(lambda: server_connections(postgres_url), 0) == 0


@pytest.mark.postgres
def test_a_thread_keeps_its_connection_between_calls_and_gets_a_new_one_once_closed(
    postgres_url,
):
    database = _connect(SqlSettings(named(postgres_url), pool_size=2, idle_seconds=1))
    thread = ThreadPoolExecutor(1)
    try:
        first = thread.submit(backend_pid, database).result()
        assert thread.submit(backend_pid, database).result() == first  # no new connection
        assert settled(lambda: server_connections(postgres_url), 0) == 0
        # The reaper closed it between calls: the next call opens another, without an error.
        assert thread.submit(backend_pid, database).result() != first
        assert server_connections(postgres_url) == 1
    finally:
        thread.shutdown()
        database.close_all()


@pytest.mark.postgres
def test_a_connection_in_use_stays_open_past_the_idle_setting(postgres_url):
    database = _connect(SqlSettings(named(postgres_url), pool_size=2, idle_seconds=0.5))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with database.lease():
            database.execute_sql('SELECT 1').fetchone()
            holding.set()
            release.wait(timeout=60)
            # Still usable after twice the idle setting in one call.
            database.execute_sql('SELECT 1').fetchone()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        holding.wait(timeout=30)
        use_at_once(database, 1)  # another thread's connection, then unused
        assert server_connections(postgres_url) == 2
        # The unused one goes; the one in a call stays however long the call lasts.
        assert settled(lambda: server_connections(postgres_url), 1) == 1
        threading.Event().wait(1)
        assert server_connections(postgres_url) == 1
    finally:
        release.set()
        holder.join()
    assert settled(lambda: server_connections(postgres_url), 0) == 0
    database.close_all()


@pytest.mark.postgres
def test_zero_keeps_connections_open(postgres_url):
    database = _connect(SqlSettings(named(postgres_url), pool_size=3, idle_seconds=0))
    try:
        use_at_once(database, 3)
        threading.Event().wait(1.5)
        assert server_connections(postgres_url) == 3
        assert database.open_connections() == 3
    finally:
        database.close_all()
    assert settled(lambda: server_connections(postgres_url), 0) == 0


def test_sqlite_connections_are_closed_too(sqlite_url):
    path = sqlite_url[len('sqlite:///'):]
    database = _connect(SqlSettings(sqlite_url, pool_size=3, idle_seconds=0.5))
    try:
        use_at_once(database, 3)
        assert open_files(path) == 3
        assert settled(lambda: open_files(path), 0) == 0
    finally:
        database.close_all()


def cut(url: str, pid: int) -> None:
    """The server ends that connection, as a restart or a pooler's idle timeout would."""
    run_sql(url, 'SELECT pg_terminate_backend(%s)', (pid,))
    assert settled(lambda: len(run_sql(url, 'SELECT 1 FROM pg_stat_activity WHERE pid = %s',
                                       (pid,))), 0) == 0


@pytest.mark.postgres
@pytest.mark.parametrize('using', [leased, pooled])
def test_a_connection_cut_while_unused_is_replaced_before_use(postgres_url, monkeypatch,
                                                                 using):
    """Unused for RECHECK_AFTER_SECONDS (0 here): the pool asks the server first."""
    monkeypatch.setattr(sql_pool, 'RECHECK_AFTER_SECONDS', 0)
    database = _connect(SqlSettings(postgres_url, pool_size=1, idle_seconds=0))
    try:
        first = backend_pid(database, using)
        cut(postgres_url, first)
        assert backend_pid(database, using) != first
    finally:
        database.close_all()


@pytest.mark.postgres
@pytest.mark.parametrize('using', [leased, pooled])
def test_a_connection_used_a_moment_ago_is_used_without_a_round_trip(
    postgres_url, monkeypatch, using,
):
    """What keeps writes at one round trip: a connection used a moment ago is not checked
    with SELECT 1 (a cut one then fails its statement, rescheduling an event)."""
    monkeypatch.setattr(sql_pool, 'RECHECK_AFTER_SECONDS', 3600)
    database = _connect(SqlSettings(postgres_url, pool_size=1, idle_seconds=0))
    try:
        cut(postgres_url, backend_pid(database, using))
        with pytest.raises((peewee.OperationalError, peewee.InterfaceError)):
            backend_pid(database, using)
    finally:
        database.close_all()


# -- the store ----------------------------------------------------------------------------------

@pytest.mark.postgres
async def test_a_quiet_store_holds_no_connection(postgres_url, purchase_request):
    store = SqlEventStore(SqlSettings(named(postgres_url), pool_size=4, idle_seconds=1))
    try:
        await asyncio.gather(*(
            store.save(purchase_record(purchase_request(f'PR-0000-0000-0000-{n:03d}')))
            for n in range(24)))
        assert 1 <= server_connections(postgres_url) <= 4
        assert await asyncio.to_thread(settled, lambda: server_connections(postgres_url), 0) == 0
        # Reopened for the next event.
        assert await store.save(purchase_record(purchase_request('PR-0000-0000-0000-000'))) == 2
    finally:
        await store.close()
