"""`make bench`, data lifecycle: an installation of 1,000,000 events exported, then purged.

The rows of localdev/bench/reads.py (one installation holding 1,000,000 events among
1,500,000, 20 others interleaved, bulk-loaded into schema version 1 and migrated by the
extension), on SQLite and PostgreSQL. Then, in one process, as the runner's workers call
the extension:

1. export: the installation's events downloaded through `GET /api/events/export`, CSV and
   NDJSON, part after part by the Link rel="next": events per second, and how far the
   process's resident memory rose above a warmed-up baseline (target: under 50 MB at any
   count). The rows downloaded must be the stored count;
2. purge: its uninstall under ON_UNINSTALL=purge with no grace (the status change handler),
   then the data lifecycle job's schedulable method, timed. Meanwhile a page read of
   another installation and an event write of the others repeat one at a time; their p99
   is compared with the same calls' p99 measured just before without a purge (targets:
   at most 2x, and a page within 50 ms). Afterwards every other installation must hold
   what it held plus what was written, and the purged one nothing.

Ratios in one run, since the machine is shared and noisy; the test runs it small.

    python -m localdev.bench.lifecycle [--events 1000000] [--quick]
"""
import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Dict, List, Optional, Sequence, Tuple

import httpx
from connect.eaas.core.enums import ResultType

from connect_mongodb_example.event_record import utcnow
from connect_mongodb_example.extension import StatefulEventsApplication
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.base import EventFilter, EventStore
from connect_mongodb_example.storage.registry import close_all, stores_for
from connect_mongodb_example.storage.sql import (
    POSTGRES_DELETE_BATCH,
    SQLITE_DELETE_BATCH,
    SqlEventStore,
)
from localdev.bench import reads, reads_data, reads_sql, reads_timing
from localdev.bench.export_walk import ExportWalk, walk_export
from localdev.bench.peak_rss import PeakRss
from localdev.bench.probes import EventWriter, Latencies, page_reader, repeat
from localdev.bench.sql import postgres_database, postgres_version
from localdev.bench.stored_counts import stored_counts

BACKENDS = ('sqlite', 'postgresql')
FORMATS = ('csv', 'ndjson')
EVENTS, QUICK_EVENTS = 1_000_000, 3_000
#: How long the calls are measured without a purge, to compare with the purge's.
BASELINE_SECONDS, QUICK_BASELINE_SECONDS = 20.0, 1.0
RATIO_TARGET = 2.0
P99_TARGET_MS = reads_timing.P99_TARGET_MS
RSS_TARGET_MB = 50.0
#: The installation purged and exported, and the others (reads.py's rows).
TARGET = reads_data.TARGET
OTHERS = tuple(f'EIN-0000-1000-{n:04d}' for n in range(reads_data.OTHERS))
#: The installation whose page is read while the purge runs.
READ_INSTALLATION = OTHERS[1]
# The handler logs a line per event and the job one per purge; the bench prints its own.
QUIET_LOGGER = logging.LoggerAdapter(logging.getLogger('bench.lifecycle'), {})
QUIET_LOGGER.logger.setLevel(logging.WARNING)


@dataclass
class Export:
    walk: ExportWalk
    stored: int
    rss_growth: int


@dataclass
class BackendResult:
    backend: str
    events: int
    exports: List[Export] = field(default_factory=list)
    purge_seconds: float = 0.0
    purge_output: str = ''
    #: Events per delete of the job: the store's delete_batch.
    delete_batch: int = 0
    #: (without a purge, during it) for the page read and the write.
    page: Tuple[Latencies, Latencies] = (Latencies('page'), Latencies('page'))
    write: Tuple[Latencies, Latencies] = (Latencies('write'), Latencies('write'))
    #: installation -> events before the calls and the purge (the store's count).
    before: Dict[str, int] = field(default_factory=dict)
    #: installation -> (expected, counted by the store, counted by SQL) after the purge.
    counts: Dict[str, Tuple[int, int, int]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return bool(self.counts) and all(
            expected == by_store == by_sql for expected, by_store, by_sql in self.counts.values())


def progress(message: str) -> None:
    """A line on stderr as each step ends: a full run takes many minutes."""
    print(f'  {time.strftime("%H:%M:%S")} {message}', file=sys.stderr, flush=True)


def configuration(url: str) -> Dict[str, str]:
    """The extension's variables: purge at once after an uninstall, no retention."""
    return {'STORAGE_BACKENDS': 'sql', 'DATABASE_URL': url,
            'ON_UNINSTALL': 'purge', 'PURGE_GRACE_DAYS': '0'}


def web_client(config: Dict[str, str]) -> httpx.AsyncClient:
    """The web application in process, called as the runner's web worker calls it, for the
    installation exported (a call may name another in its own headers)."""
    transport = httpx.ASGITransport(app=reads.web_application())
    return httpx.AsyncClient(transport=transport, base_url='http://localhost', headers={
        'X-Connect-Installation-Id': TARGET, 'X-Connect-Config': json.dumps(config)})


def extension(config: Dict[str, str]) -> StatefulEventsApplication:
    """An application instance as the runner makes one per task."""
    return StatefulEventsApplication(client=None, logger=QUIET_LOGGER, config=config,
                                     installation=None)


async def load(backend: str, url: str, events: int, notes: List[str]) -> None:
    """reads.py's rows: loaded into schema version 1, migrated by the extension, analyzed."""
    load_rows, analyze = (
        (reads_sql.load_postgres, reads_sql.analyze_postgres) if backend == 'postgresql'
        else (reads_sql.load_sqlite, reads_sql.analyze_sqlite))
    reads_sql.first_schema_version(url)
    started = time.monotonic()
    load_rows(url, events)
    loaded = time.monotonic()
    await reads_sql.migrate(url)
    analyze(url)
    notes.append(f'{backend}: {reads_data.total_rows(events):,} events loaded in '
                 f'{loaded - started:.0f}s, migrated and analyzed in '
                 f'{time.monotonic() - loaded:.0f}s.')


async def export(
    client: httpx.AsyncClient, store: EventStore, formats: Sequence[str],
) -> List[Export]:
    stored = await store.count_events(EventFilter(TARGET))
    exports = []
    for format_name in formats:
        # A few parts first: the store's connections, the app's routes and the codecs are
        # then in memory, and the baseline holds them; what rises above it is the export's.
        await walk_export(client, format_name, max_parts=3)
        gc.collect()
        with PeakRss() as peak:
            walk = await walk_export(client, format_name)
        exports.append(Export(walk, stored, peak.growth))
        progress(f'export {format_name}: {walk.rows:,} rows in {walk.seconds:.0f}s, RSS '
                 f'+{peak.growth / 2**20:.1f} MB')
    return exports


async def measured_calls(client: httpx.AsyncClient, writer: EventWriter,
                         until: 'asyncio.Future[object]') -> Tuple[Latencies, Latencies]:
    """The page read and the write, repeated side by side until `until` is done."""
    stop = asyncio.Event()
    calls = [asyncio.ensure_future(repeat('page', page_reader(client, READ_INSTALLATION), stop)),
             asyncio.ensure_future(repeat('write', writer, stop))]
    try:
        await until
    finally:
        stop.set()
        page, write = await asyncio.gather(*calls)
    return page, write


async def purge(result: BackendResult, client: httpx.AsyncClient, store: EventStore,
                config: Dict[str, str], baseline_seconds: float) -> None:
    before = result.before = {installation: await store.count_events(EventFilter(installation))
                              for installation in (TARGET, *OTHERS)}
    writer = EventWriter(store, OTHERS, tag=f'{result.backend[:4].upper()}')
    page_before, write_before = await measured_calls(
        client, writer, asyncio.ensure_future(asyncio.sleep(baseline_seconds)))

    app = extension(config)
    now = utcnow()
    uninstalled = await app.handle_installation_status_change({
        'id': TARGET, 'status': 'uninstalled', 'owner': {'id': 'VA-000-000'},
        'events': {'uninstalled': {'at': (now - timedelta(seconds=1)).isoformat()}}})
    if uninstalled.status != ResultType.SUCCESS:
        raise RuntimeError(f'the uninstall was not stored: {uninstalled.output}')

    async def job() -> float:
        started = time.perf_counter()
        # The schedulable method itself, with the parameter a schedule for every
        # installation sends (none).
        response = await extension(config).run_data_lifecycle({'parameter': None})
        seconds = time.perf_counter() - started
        if response.status != ResultType.SUCCESS:
            raise RuntimeError(f'the data lifecycle job failed: {response.output}')
        # The store's line of the summary, without where the store is (a temporary path).
        result.purge_output = (response.output or '').splitlines()[-1].split('): ', 1)[-1]
        return seconds

    running = asyncio.ensure_future(job())
    page_during, write_during = await measured_calls(client, writer, running)
    result.purge_seconds = running.result()
    progress(f'purge: {result.purge_seconds:.0f}s, {len(page_during.seconds)} pages and '
             f'{len(write_during.seconds)} writes meanwhile')
    result.page, result.write = (page_before, page_during), (write_before, write_during)

    by_sql = stored_counts(config['DATABASE_URL'])
    for installation in (TARGET, *OTHERS):
        # The target's events, all received before the job's plan, are all gone.
        expected = 0 if installation == TARGET else (
            before[installation] + writer.written.get(installation, 0))
        result.counts[installation] = (
            expected, await store.count_events(EventFilter(installation)),
            by_sql.get(installation, 0))


async def bench_backend(backend: str, url: str, events: int, formats: Sequence[str],
                        baseline_seconds: float) -> BackendResult:
    result = BackendResult(backend, events)
    await load(backend, url, events, result.notes)
    progress(result.notes[-1])
    config = configuration(url)
    # The store the events handler and the job use in the runner's background worker.
    store = stores_for(load_settings(config))[0]
    result.delete_batch = store.delete_batch
    try:
        async with web_client(config) as client:
            result.exports = await export(client, store, formats)
            await purge(result, client, store, config, baseline_seconds)
    finally:
        await close_all()
    # The machine may be shared: how busy it was is part of the figures.
    result.notes.append(f'{backend}: load average {os.getloadavg()[0]:.1f} after the purge.')
    return result


async def run(backends: Sequence[str], events: int, formats: Sequence[str],
              baseline_seconds: float) -> List[BackendResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix='bench-lifecycle-') as directory:
        for backend in backends:
            if backend == 'sqlite':
                url = f'sqlite:///{os.path.join(directory, "lifecycle.sqlite3")}'
                results.append(await bench_backend(backend, url, events, formats,
                                                   baseline_seconds))
                progress('\n' + report(results[-1:], events, baseline_seconds))
                continue
            with postgres_database() as (url, where):
                result = await bench_backend(backend, url, events, formats, baseline_seconds)
                result.notes.insert(0, f'postgresql: PostgreSQL {postgres_version(url)}, a '
                                       f'fresh database on {where}.')
                results.append(result)
                progress('\n' + report(results[-1:], events, baseline_seconds))
    return results


# -- the report -------------------------------------------------------------------------------

def _verdict(ok: bool) -> str:
    return 'PASS' if ok else 'FAIL'


def _ratio(during: Latencies, before: Latencies) -> float:
    return during.p99_ms / before.p99_ms if before.p99_ms else 0.0


def report(results: Sequence[BackendResult], events: int, baseline_seconds: float) -> str:
    total = reads_data.total_rows(events)
    lines = [
        f'Data lifecycle: installation {TARGET} holding {events:,} events among {total:,}.',
        *(note for result in results for note in result.notes),
    ]
    if any(result.exports for result in results):
        lines += export_table(results)
    lines += purge_table(results, baseline_seconds)
    return '\n'.join(lines)


def export_table(results: Sequence[BackendResult]) -> List[str]:
    lines = [
        '',
        f'Export: every part of GET /api/events/export by Link rel="next" (target: RSS growth '
        f'< {RSS_TARGET_MB:g} MB; rows = stored).',
        f'{"backend":<11} {"format":<7} {"rows":>9} {"stored":>9} {"parts":>6} '
        f'{"max KiB":>7} {"seconds":>8} {"ev/s":>7} {"RSS MB":>7}',
        '-' * 80,
    ]
    for result in results:
        for item in result.exports:
            walk = item.walk
            growth = item.rss_growth / 2**20
            ok = growth < RSS_TARGET_MB and walk.rows == walk.announced == item.stored
            lines.append(
                f'{result.backend:<11} {walk.format:<7} {walk.rows:>9} {item.stored:>9} '
                f'{walk.parts:>6} {walk.largest_part / 1024:>7.0f} {walk.seconds:>8.1f} '
                f'{walk.per_second:>7.0f} {growth:>7.1f} '
                f'{_verdict(ok)}')
    return lines


def purge_table(results: Sequence[BackendResult], baseline_seconds: float) -> List[str]:
    lines = [
        '',
        f'Purge: {TARGET} uninstalled with ON_UNINSTALL=purge, PURGE_GRACE_DAYS=0, then the '
        "data lifecycle schedulable, deleting the store's delete_batch events a batch; "
        f'page = GET /api/events page 1 of {READ_INSTALLATION}, '
        f'write = a new event of another installation through the store\'s save; "before": '
        f'{baseline_seconds:g}s without a purge (target: p99 during/before <= '
        f'{RATIO_TARGET:g}, page p99 < {P99_TARGET_MS:g} ms).',
        f'{"backend":<11} {"batch":>5} {"purge s":>8} {"call":<6} {"calls b/d":>11} '
        f'{"p50 before":>10} {"p50 during":>10} {"p99 before":>10} {"p99 during":>10} {"ratio":>6}',
        '-' * 94,
    ]
    for result in results:
        for name, (before, during) in (('page', result.page), ('write', result.write)):
            ratio = _ratio(during, before)
            ok = ratio <= RATIO_TARGET and (name != 'page' or during.p99_ms < P99_TARGET_MS)
            lines.append(
                f'{result.backend:<11} {result.delete_batch:>5} {result.purge_seconds:>8.1f} '
                f'{name:<6} '
                f'{len(before.seconds):>5}/{len(during.seconds):<5} {before.p50_ms:>10.2f} '
                f'{during.p50_ms:>10.2f} {before.p99_ms:>10.2f} {during.p99_ms:>10.2f} '
                f'{ratio:>6.2f} {_verdict(ok)}')
    lines.append('')
    for result in results:
        left = result.counts.get(TARGET, (0, -1, -1))
        others = sum(result.counts[name][0] for name in OTHERS) if result.counts else 0
        lines.append(
            f'{result.backend}: after the purge {TARGET} holds {left[1]} (store) / {left[2]} '
            f'(SQL); the {len(OTHERS)} others hold {others:,} as expected: '
            f'{_verdict(result.intact)}. Job: {result.purge_output}')
    return lines


def all_correct(results: Sequence[BackendResult]) -> bool:
    """The checks that are not timings: every row exported, the purge exact."""
    return all(result.intact and all(
        item.walk.rows == item.walk.announced == item.stored for item in result.exports)
        for result in results)


# -- command line -----------------------------------------------------------------------------

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m localdev.bench.lifecycle',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help=f'a smoke run: {QUICK_EVENTS:,} events, {QUICK_BASELINE_SECONDS:g}s '
                             'of baseline')
    parser.add_argument('--events', type=int,
                        help=f'events of the installation exported and purged (default {EVENTS:,})')
    parser.add_argument('--baseline-seconds', type=float,
                        help=f'calls measured without a purge (default {BASELINE_SECONDS:g})')
    parser.add_argument('--backends', default=','.join(BACKENDS),
                        help=f'comma-separated, from {", ".join(BACKENDS)} (default: both)')
    parser.add_argument('--formats', default=','.join(FORMATS),
                        help=f'export formats, from {", ".join(FORMATS)} (default: both), or '
                             'none to purge only')
    parser.add_argument('--delete-batch', type=int,
                        help='events per delete of the job, to see what the batch size trades '
                             "(default: each store's delete_batch: SQLite "
                             f'{SQLITE_DELETE_BATCH}, PostgreSQL {POSTGRES_DELETE_BATCH})')
    options = parser.parse_args(argv)
    options.events = options.events or (QUICK_EVENTS if options.quick else EVENTS)
    if options.baseline_seconds is None:
        options.baseline_seconds = QUICK_BASELINE_SECONDS if options.quick else BASELINE_SECONDS
    for name, known in (('backends', BACKENDS), ('formats', FORMATS)):
        chosen = [item.strip() for item in getattr(options, name).split(',') if item.strip()]
        if name == 'formats' and chosen == ['none']:
            options.formats = []
            continue
        unknown = sorted(set(chosen) - set(known))
        if unknown or not chosen:
            parser.error(f'--{name}: unknown {", ".join(unknown) or "(none given)"}; '
                         f'choose from {", ".join(known)}')
        setattr(options, name, chosen)
    if options.events < reads.PAGE_SIZE:
        parser.error(f'--events must be at least {reads.PAGE_SIZE}')
    if options.delete_batch is not None and options.delete_batch < 1:
        parser.error('--delete-batch must be at least 1')
    return options


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parse_args(argv)
    if options.delete_batch:
        # The job reads the store's delete_batch at each delete: an experiment, never a
        # setting.
        SqlEventStore.delete_batch = options.delete_batch  # type: ignore[assignment]
    started = time.monotonic()
    results = asyncio.run(run(options.backends, options.events, options.formats,
                              options.baseline_seconds))
    print(report(results, options.events, options.baseline_seconds))
    print(f'Total time {time.monotonic() - started:.0f}s; uptime: {machine_load()}')
    if not all_correct(results):
        print('Rows missing or left: see the FAIL lines above.', file=sys.stderr)
        return 1
    return 0


def machine_load() -> str:
    try:
        with open('/proc/loadavg', encoding='ascii') as loadavg:
            return 'load average ' + ', '.join(loadavg.read().split()[:3])
    except OSError:
        return 'load average unknown'


if __name__ == '__main__':
    sys.exit(main())
