"""peewee's connection pools, made to follow the load: a connection unused for longer than
`STORAGE_IDLE_SECONDS` is closed, while the process is quiet too.

peewee closes pooled connections only as it hands them out or takes them back, and its
`stale_timeout` counts from a connection's creation, whatever its use: a process gone quiet
keeps every connection it ever opened. Here a reaper thread closes them by the time they
have been unused; it exists only while a connection is open, so a quiet process ends up
with neither connections nor that thread.

The store's worker threads each keep a connection between calls (`lease`): handing one back
to peewee's pool and taking one out again for every call costs its locks and heap, which
measurably slowed writes at 8 threads (docs/connections.md). The reaper closes the
connection of a thread that has not called for `idle_seconds`, never during a call (each
thread's lease has a lock the reaper only tries), and the thread opens a new one on its
next call. Connections used the usual way (`connection_context`) are closed once they rested
in the pool that long.

A connection unused for `RECHECK_AFTER_SECONDS` or more is checked with a round trip
(`SELECT 1` on PostgreSQL) before use, since it may have been cut meanwhile (a server
restart, a pooler's or a firewall's idle timeout): a new one replaces it, instead of it
failing a write. One used a moment ago is used as is, which keeps a write at one round trip.
"""
import heapq
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

#: A connection unused for less than this is used without a round trip to check it.
RECHECK_AFTER_SECONDS = 1.0


@dataclass
class _Lease:
    """One worker thread's connection, kept between its calls."""

    #: Held by the thread for the whole of a call; the reaper only tries it.
    lock: threading.Lock
    conn: Any = None
    last_used: float = 0.0
    #: The reaper closed `conn` while the thread was not using it.
    cut: bool = False


class IdleClosingPool:
    """A mixin for playhouse.pool's pools (first in the bases): a connection unused for
    `idle_seconds` is closed; 0 keeps connections open, as peewee's own pool does."""

    _pool_lock: threading.RLock
    _connections: list

    def __init__(self, *args: Any, idle_seconds: float, **kwargs: Any) -> None:
        self._idle_seconds = idle_seconds
        # Connection key -> when it went back to the pool (monotonic clock).
        self._rested_since: Dict[int, float] = {}
        # Thread id -> its lease; `_local.lease` is the calling thread's.
        self._leases: Dict[int, _Lease] = {}
        self._local = threading.local()
        self._reaper: Optional[threading.Thread] = None
        super().__init__(*args, **kwargs)
        self._reaper_wakeup = threading.Condition(self._pool_lock)

    @contextmanager
    def lease(self) -> Iterator[None]:
        """This thread's connection for one call, opened when it has none."""
        lease = getattr(self._local, 'lease', None)
        if lease is None:
            lease = self._local.lease = _Lease(threading.Lock())
            with self._pool_lock:
                self._leases[threading.get_ident()] = lease
        with lease.lock:
            if lease.cut:
                lease.cut = False
                self.close()  # forgets the closed connection (the pool no longer has it)
            elif (lease.conn is not None
                  and time.monotonic() - lease.last_used >= RECHECK_AFTER_SECONDS
                  and super()._is_closed(lease.conn)):
                self.manual_close()
            self.connect(reuse_if_open=True)
            lease.conn = self._state.conn
            try:
                yield
            finally:
                lease.last_used = time.monotonic()
                if self.is_closed():  # dropped during the call (manual_close)
                    lease.conn = None
        if self._idle_seconds and self._reaper is None:
            with self._pool_lock:
                self._start_reaper()

    def open_connections(self) -> int:
        """Connections open in the pool: resting, or kept by a thread."""
        with self._pool_lock:
            return len(self._connections) + len(self._in_use)

    # -- peewee's hooks, all called with the pool lock held ----------------------------------

    def _is_closed(self, conn: Any) -> bool:
        """Called as the pool hands `conn` out again."""
        since = self._rested_since.pop(self.conn_key(conn), None)
        if since is not None and time.monotonic() - since < RECHECK_AFTER_SECONDS:
            return self._closed_locally(conn)
        return super()._is_closed(conn)

    def _closed_locally(self, conn: Any) -> bool:
        """What the driver knows of `conn` without asking the server."""
        return super()._is_closed(conn)

    def _can_reuse(self, conn: Any) -> bool:
        """Called as `conn` goes back to the pool: from now on it rests."""
        if not super()._can_reuse(conn):
            return False
        self._rested_since[self.conn_key(conn)] = time.monotonic()
        self._start_reaper()
        return True

    def close_idle(self) -> None:
        with self._pool_lock:
            super().close_idle()
            self._rested_since.clear()
            self._reaper_wakeup.notify_all()

    # -- the reaper --------------------------------------------------------------------------

    def _start_reaper(self) -> None:
        if self._idle_seconds and self._reaper is None:
            self._reaper = threading.Thread(
                target=self._reap, name='sql-pool-idle-closer', daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        with self._pool_lock:
            while True:
                wait = self._sweep()
                if wait is None:
                    return
                # Releases the pool lock meanwhile.
                self._reaper_wakeup.wait(wait)

    def _sweep(self) -> Optional[float]:
        """Close the connections unused for `idle_seconds`; the seconds until the next one
        will have been, or None (the reaper then ends) when none is open."""
        now = time.monotonic()
        due = self._close_rested(now)
        # The leases of the threads not in a call, held until the end, so that none starts
        # a call before `_reaper` says whether a reaper still runs.
        held: List[_Lease] = []
        try:
            for lease in list(self._leases.values()):
                if not lease.lock.acquire(blocking=False):
                    due.append(now + self._idle_seconds)  # in a call: it ends later
                    continue
                held.append(lease)
                if lease.conn is None:
                    continue
                if now - lease.last_used >= self._idle_seconds:
                    self._close(lease.conn, close_conn=True)
                    lease.conn, lease.cut = None, True
                else:
                    due.append(lease.last_used + self._idle_seconds)
            if not due:
                self._reaper = None
                return None
            return max(min(due) - now, 0.0)
        finally:
            for lease in held:
                lease.lock.release()

    def _close_rested(self, now: float) -> List[float]:
        """Close the connections that rested in the pool `idle_seconds`; when the others
        will have."""
        kept, due = [], []
        for entry in self._connections:
            conn = entry[-1]
            key = self.conn_key(conn)
            since = self._rested_since.get(key, now)
            if now - since >= self._idle_seconds:
                self._rested_since.pop(key, None)
                self._close_raw(conn)
            else:
                kept.append(entry)
                due.append(since + self._idle_seconds)
        if len(kept) != len(self._connections):
            heapq.heapify(kept)
            self._connections = kept
        return due


class IdleClosingPostgresqlDatabase(IdleClosingPool, PooledPostgresqlDatabase):
    def _closed_locally(self, conn: Any) -> bool:
        # psycopg2 knows it lost the connection once a call on it failed.
        adapter = self._adapter
        return bool(conn.closed) or adapter.txn_status(conn) == adapter.txn_unknown


class IdleClosingSqliteDatabase(IdleClosingPool, PooledSqliteDatabase):
    """SQLite's check is local already: only the idle closing differs."""
