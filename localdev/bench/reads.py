"""`make bench`, reads: pages of one installation's events among many, on SQLite and PostgreSQL.

An installation holding 1,000,000 stored events, interleaved with other installations' events
(half as many again, over 20 installations), is bulk-loaded with one SQL statement into the
extension's first schema version (loading them through the handler would take an hour); the
extension then migrates it as it would an existing database (read indexes, counts). Then the
web application answers `GET /api/events` (a page and its Content-Range total) for the first
and the 100th page of 50 events, and the same for one status, and a request's timeline, called
in process through an ASGI transport as the runner's web worker calls it, one at a time.

    python -m localdev.bench.reads [--events 1000000] [--requests 200]
"""
import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import List, Optional, Sequence, Tuple

import httpx
import psycopg2
from fastapi import FastAPI
from playhouse.db_url import connect as connect_url

from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.storage.registry import close_all
from connect_mongodb_example.storage.sql import SqlEventStore, SqlSettings
from connect_mongodb_example.storage.sql_schema import EVENTS_TABLE, MIGRATIONS, version_model
from connect_mongodb_example.webapp import EventsWebApplication
from localdev.bench.measure import percentile
from localdev.bench.sql import postgres_database, postgres_version
from localdev.bench.workloads import TEMPLATE_FILE

BACKENDS = ('sqlite', 'postgresql')
#: The installation whose pages are read, and the others beside it.
TARGET = 'EIN-0000-0000-0001'
OTHERS = 20
#: Of every 3 events loaded, 2 are the target installation's and 1 another's.
TARGET_SHARE = (2, 3)
EVENTS, REQUESTS = 1_000_000, 200
QUICK_EVENTS, QUICK_REQUESTS = 6_000, 20
PAGE_SIZE = 50
PAGES = (1, 100)
#: The Events page's target (README, Performance): the 99th percentile of an answer, in ms.
P99_TARGET_MS = 50.0
# One event per second of received time, from this moment on (naive UTC, as stored).
FIRST_RECEIVED = '2026-01-01 00:00:00'


@dataclass(frozen=True)
class ReadResult:
    backend: str
    case: str
    requests: int
    p50_ms: float
    p99_ms: float

    @property
    def verdict(self) -> str:
        return 'PASS' if self.p99_ms <= P99_TARGET_MS else 'MISS'


def total_rows(target_events: int) -> int:
    """Rows to load so that the target installation gets exactly `target_events`."""
    share, every = TARGET_SHARE
    full, rest = divmod(target_events, share)
    return full * every + rest


def _template() -> str:
    return json.dumps(json.loads(TEMPLATE_FILE.read_text(encoding='utf-8'))['request'],
                      separators=(',', ':'))


# Row i (1-based): the target's when i % 3 != 0, else installation i % OTHERS; statuses cycle;
# received i seconds after FIRST_RECEIVED, so the newest events have the highest i.
_POSTGRES_LOAD = f"""
INSERT INTO {EVENTS_TABLE} (key, request_id, status, updated, event_type, asset_id, product_id,
    installation_id, account_id, received_at, last_received_at, delivery_count, request)
SELECT inst || '/' || rid || ':' || st || ':' || upd, rid, st, upd, %(event_type)s,
    'AS-' || i, 'PRD-000-000-001', inst, 'VA-000-' || (i %% {OTHERS}), at, at, 1 + i %% 2,
    jsonb_set(%(template)s::jsonb, '{{id}}', to_jsonb(rid))
FROM (
    SELECT i,
        CASE WHEN i %% {TARGET_SHARE[1]} = 0
             THEN 'EIN-0000-1000-' || lpad((i %% {OTHERS})::text, 4, '0')
             ELSE %(target)s END AS inst,
        'PR-' || lpad(i::text, 12, '0') || '-001' AS rid,
        (%(statuses)s::text[])[1 + i %% {len(PURCHASE_REQUEST.statuses)}] AS st,
        to_char(timestamp %(first)s + i * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS+00:00')
            AS upd,
        timestamp %(first)s + i * interval '1 second' AS at
    FROM generate_series(1, %(rows)s) AS i
) AS generated
"""  # noqa: S608 - constants only, values are bound

_SQLITE_LOAD = f"""
WITH RECURSIVE counter(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM counter WHERE i < :rows),
generated AS (
    SELECT i,
        CASE WHEN i % {TARGET_SHARE[1]} = 0
             THEN 'EIN-0000-1000-' || substr('000' || (i % {OTHERS}), -4)
             ELSE :target END AS inst,
        'PR-' || substr('00000000000' || i, -12) || '-001' AS rid,
        json_extract(:statuses, '$[' || (i % {len(PURCHASE_REQUEST.statuses)}) || ']') AS st,
        strftime('%Y-%m-%dT%H:%M:%S+00:00', :first, '+' || i || ' seconds') AS upd,
        strftime('%Y-%m-%d %H:%M:%S', :first, '+' || i || ' seconds') AS at
    FROM counter
)
INSERT INTO {EVENTS_TABLE} (key, request_id, status, updated, event_type, asset_id, product_id,
    installation_id, account_id, received_at, last_received_at, delivery_count, request)
SELECT inst || '/' || rid || ':' || st || ':' || upd, rid, st, upd, :event_type,
    'AS-' || i, 'PRD-000-000-001', inst, 'VA-000-' || (i % {OTHERS}), at, at, 1 + i % 2,
    json_set(:template, '$.id', rid)
FROM generated
"""  # noqa: S608 - constants only, values are bound


def first_schema_version(url: str) -> None:
    """The events table as the extension's first schema version made it: no read indexes nor
    counts yet, so that the bulk load runs no trigger and the migrations then upgrade it."""
    database = connect_url(url)
    try:
        with database.connection_context():
            versions = version_model(database)
            database.create_tables([versions], safe=True)
            version, migrate = MIGRATIONS[0]
            with database.atomic():
                migrate(database)
                versions.insert(
                    version=version, applied_at=datetime.now(timezone.utc).replace(tzinfo=None),
                ).execute()
    finally:
        database.close()


async def migrate(url: str) -> None:
    """The extension's own migrations, as its first event after an upgrade runs them."""
    store = SqlEventStore(SqlSettings(url, pool_size=1))
    try:
        await store.ping()
    finally:
        await store.close()


def load_postgres(url: str, target_events: int) -> None:
    connection = psycopg2.connect(url, connect_timeout=5)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(_POSTGRES_LOAD, {
                'event_type': PURCHASE_REQUEST.name, 'template': _template(),
                'target': TARGET, 'statuses': list(PURCHASE_REQUEST.statuses),
                'first': FIRST_RECEIVED, 'rows': total_rows(target_events),
            })
    finally:
        connection.close()


def analyze_postgres(url: str) -> None:
    """What autovacuum does to a table some time after a load: statistics, visibility map."""
    connection = psycopg2.connect(url, connect_timeout=5)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'VACUUM ANALYZE {EVENTS_TABLE}')
    finally:
        connection.close()


def load_sqlite(url: str, target_events: int) -> None:
    connection = sqlite3.connect(url.split(':///', 1)[1], isolation_level=None)
    try:
        connection.execute('BEGIN')
        connection.execute(_SQLITE_LOAD, {
            'event_type': PURCHASE_REQUEST.name, 'template': _template(), 'target': TARGET,
            'statuses': json.dumps(PURCHASE_REQUEST.statuses), 'first': FIRST_RECEIVED,
            'rows': total_rows(target_events),
        })
        connection.execute('COMMIT')
    finally:
        connection.close()


def analyze_sqlite(url: str) -> None:
    connection = sqlite3.connect(url.split(':///', 1)[1], isolation_level=None)
    try:
        connection.execute('ANALYZE')
    finally:
        connection.close()


def web_application() -> FastAPI:
    """The web application's routes mounted as the runner mounts them (under /api)."""
    app = FastAPI()
    authenticated, _ = EventsWebApplication.get_routers()
    app.include_router(authenticated, prefix='/api')
    return app


def read_cases(target_events: int) -> List[Tuple[str, str]]:
    """(name, URL) of every measured call."""
    per_status = target_events // len(PURCHASE_REQUEST.statuses)
    cases = []
    for status in (None, 'approved'):
        for page in PAGES:
            offset = (page - 1) * PAGE_SIZE
            if offset >= (per_status if status else target_events):
                continue
            query = f'limit={PAGE_SIZE}&offset={offset}' + (f'&status={status}' if status else '')
            cases.append((f'page {page}' + (f', {status}' if status else ''),
                          f'/api/events?{query}'))
    # The newest request of the target installation (row 1 of the load is another's).
    newest = total_rows(target_events) - (1 if total_rows(target_events) % 3 == 0 else 0)
    cases.append(('timeline', f'/api/requests/PR-{newest:012d}-001/timeline'))
    return cases


async def measure_reads(
    backend: str, url: str, target_events: int, requests: int,
) -> List[ReadResult]:
    headers = {
        'X-Connect-Installation-Id': TARGET,
        'X-Connect-Config': json.dumps({'STORAGE_BACKENDS': 'sql', 'DATABASE_URL': url}),
    }
    transport = httpx.ASGITransport(app=web_application())
    results = []
    async with httpx.AsyncClient(transport=transport, base_url='http://localhost',
                                 headers=headers) as client:
        for case, path in read_cases(target_events):
            latencies = []
            for index in range(requests + requests // 10):
                started = time.perf_counter()
                response = await client.get(path)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200 or not response.json():
                    raise RuntimeError(f'{backend} {case}: HTTP {response.status_code} '
                                       f'{response.text[:200]}')
                if index >= requests // 10:  # the first tenth warms caches up
                    latencies.append(elapsed)
            results.append(ReadResult(backend, case, len(latencies),
                                      percentile(latencies, 0.5), percentile(latencies, 0.99)))
    await close_all()
    return results


@dataclass
class ReadBench:
    results: List[ReadResult]
    notes: List[str]


async def bench_backend(
    backend: str, url: str, target_events: int, requests: int, notes: List[str],
) -> List[ReadResult]:
    load, analyze = ((load_postgres, analyze_postgres) if backend == 'postgresql'
                     else (load_sqlite, analyze_sqlite))
    first_schema_version(url)
    started = time.monotonic()
    load(url, target_events)
    loaded = time.monotonic()
    await migrate(url)
    migrated = time.monotonic()
    analyze(url)
    notes.append(f'{backend}: {total_rows(target_events):,} events loaded in '
                 f'{loaded - started:.0f}s, migrated (read indexes, counts) in '
                 f'{migrated - loaded:.0f}s.')
    results = await measure_reads(backend, url, target_events, requests)
    # The machine may be shared: how busy it was is part of the figures.
    notes.append(f'{backend}: load average {os.getloadavg()[0]:.1f} after the reads.')
    return results


async def run(backends: Sequence[str], target_events: int, requests: int) -> ReadBench:
    bench = ReadBench([], [])
    with tempfile.TemporaryDirectory(prefix='bench-reads-') as directory:
        if 'sqlite' in backends:
            url = f'sqlite:///{os.path.join(directory, "reads.sqlite3")}'
            bench.results += await bench_backend('sqlite', url, target_events, requests,
                                                 bench.notes)
        if 'postgresql' in backends:
            with postgres_database() as (url, where):
                bench.notes.append(f'postgresql: PostgreSQL {postgres_version(url)}, '
                                   f'a fresh database on {where}.')
                bench.results += await bench_backend('postgresql', url, target_events,
                                                     requests, bench.notes)
    return bench


def report(bench: ReadBench, target_events: int) -> str:
    lines = [
        f'Reads: GET /api/events in an installation of {target_events:,} events among '
        f'{total_rows(target_events):,}; {PAGE_SIZE} per page; one call at a time '
        f'(target: p99 <= {P99_TARGET_MS:g} ms).',
        *bench.notes,
        f'{"backend":<11} {"call":<20} {"calls":>6} {"p50 ms":>7} {"p99 ms":>7}',
        '-' * 56,
    ]
    for result in bench.results:
        lines.append(f'{result.backend:<11} {result.case:<20} {result.requests:>6} '
                     f'{result.p50_ms:>7.2f} {result.p99_ms:>7.2f} {result.verdict}')
    return '\n'.join(lines)


async def bench(quick: bool) -> str:
    """The report `make bench` prints (`--quick`: a smoke run on a small installation)."""
    events, requests = (QUICK_EVENTS, QUICK_REQUESTS) if quick else (EVENTS, REQUESTS)
    return report(await run(BACKENDS, events, requests), events)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m localdev.bench.reads',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--events', type=int, default=EVENTS,
                        help=f'events of the installation read (default {EVENTS})')
    parser.add_argument('--requests', type=int, default=REQUESTS,
                        help=f'measured calls per case (default {REQUESTS})')
    parser.add_argument('--backends', default=','.join(BACKENDS),
                        help=f'comma-separated, from {", ".join(BACKENDS)} (default: both)')
    options = parser.parse_args(argv)
    options.backends = [name.strip() for name in options.backends.split(',') if name.strip()]
    unknown = sorted(set(options.backends) - set(BACKENDS))
    if unknown or not options.backends:
        parser.error(f'--backends: unknown {", ".join(unknown) or "(none given)"}')
    if options.events < PAGE_SIZE or options.requests < 10:
        parser.error('--events must be at least 50 and --requests at least 10')
    return options


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parse_args(argv)
    bench = asyncio.run(run(options.backends, options.events, options.requests))
    print(report(bench, options.events))
    return 0


if __name__ == '__main__':
    sys.exit(main())
