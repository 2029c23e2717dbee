"""`make bench`: throughput and latency of the handler path, against the bare drivers.

For each backend (SQLite, PostgreSQL, the Data API on the local server) and concurrency,
the same events go through:

- handler: the extension as the runner calls it, a new application instance per event;
- raw: the same statement or HTTP bodies through the bare driver, same pool size;
- per-event: the tutorial's pattern, a new connection or HTTP client for every event;

and, once, end to end through the Connect emulation and the real runner. Measurements are
compared as ratios taken in the same run, since the machine is shared and noisy.

    python -m localdev.bench [--quick] [--backends sqlite,postgresql,dataapi,e2e,reads]
"""
import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from connect_mongodb_example.storage.registry import close_all
from localdev.bench import machine, reads
from localdev.bench.dataapi import RawDataApiWork, dataapi_server, handler_config
from localdev.bench.e2e import runner_work
from localdev.bench.measure import Measurement, Work, measure
from localdev.bench.sql import (
    RawSqlWork,
    capture_upsert,
    postgres_connector,
    postgres_database,
    postgres_version,
    sqlite_connector,
)
from localdev.bench.workloads import EventFactory, HandlerWork
from localdev.offline import REPO_ROOT

BACKENDS = ('sqlite', 'postgresql', 'dataapi', 'e2e', 'reads')
HANDLER, RAW, PER_EVENT, RUNNER = 'handler', 'raw', 'per-event', 'runner'
#: Ratios the report marks PASS or MISS: the handler against the bare driver (PostgreSQL at
#: concurrency 32 only), and pooled clients against a client per event (every level).
HANDLER_VS_RAW_MIN = 0.8
POOLED_VS_PER_EVENT_MIN = 3.0
# The Data API server keeps data in mongomock, which scans a collection for every query:
# a bounded set of request ids (the rest are redeliveries) keeps its cost flat over a run.
DATAAPI_DISTINCT_EVENTS = 200
# Tasks in flight end to end, as when Connect pushes a backlog: the runner answers results in
# batches (it polls its result queue every 0.5 s), so a few tasks in flight would measure that.
E2E_CONCURRENCY = 64
# A result takes about a second end to end (see above): measure long enough to see many.
E2E_MIN_SECONDS = 4.0
E2E_MIN_SECONDS_QUICK = 2.5


class Bench:
    """Runs measurements and keeps them; the best of `rounds` per (backend, path, level)."""

    def __init__(self, options: argparse.Namespace):
        self.options = options
        self.results: List[Measurement] = []
        self.notes: List[str] = []
        self.versions: Dict[str, str] = {}
        self._tags = itertools.count(1)
        self.reads = ''  # the report of localdev.bench.reads

    def tag(self) -> int:
        return next(self._tags)

    async def compare(
        self, backend: str, concurrency: int, paths: Dict[str, Callable[[], Work]],
        rounds: Optional[int] = None, duration: Optional[float] = None,
    ) -> None:
        """Measure every path at one concurrency, alternating their order between rounds
        so that a slow spell of the machine does not always hit the same path."""
        best: Dict[str, Measurement] = {}
        names = list(paths)
        for round_ in range(rounds or self.options.rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                result = await measure(
                    paths[name](), backend=backend, path=name, concurrency=concurrency,
                    duration=duration or self.options.duration, warmup=self.options.warmup,
                )
                if name not in best or result.per_second > best[name].per_second:
                    best[name] = result
        for name in names:
            self.results.append(best[name])
            self._progress(best[name])

    def _progress(self, result: Measurement) -> None:
        print(f'  {result.backend:<10} c={result.concurrency:<3} {result.path:<9} '
              f'{result.per_second:8.0f} ev/s', file=sys.stderr, flush=True)

    def find(self, backend: str, path: str, concurrency: int) -> Optional[Measurement]:
        for result in self.results:
            if (result.backend, result.path, result.concurrency) == (backend, path, concurrency):
                return result
        return None


async def bench_sqlite(bench: Bench, directory: str) -> None:
    path = os.path.join(directory, 'bench.sqlite3')
    config = {'DATABASE_URL': f'sqlite:///{path}', 'DATABASE_POOL_SIZE': str(bench.options.pool)}
    await _bench_sql(bench, 'sqlite', config, sqlite_connector(path), per_event=False)


async def bench_postgresql(bench: Bench) -> None:
    with postgres_database() as (url, where):
        bench.versions['PostgreSQL'] = postgres_version(url)
        bench.notes.append(f'PostgreSQL: a fresh database on {where}.')
        config = {'DATABASE_URL': url, 'DATABASE_POOL_SIZE': str(bench.options.pool)}
        await _bench_sql(bench, 'postgresql', config, postgres_connector(url), per_event=True)


async def _bench_sql(bench: Bench, backend: str, config: Dict[str, str],
                     connect: Callable, per_event: bool) -> None:
    size = bench.options.pool
    sql, columns, tail = await capture_upsert(config, EventFactory(0))
    workers: List[RawSqlWork] = []

    def raw(per_event_: bool) -> Callable[[], Work]:
        def make() -> Work:
            work = RawSqlWork(connect, sql, columns, tail, EventFactory(bench.tag()), size,
                              per_event=per_event_)
            workers.append(work)
            return work
        return make

    paths = {HANDLER: lambda: HandlerWork(config, EventFactory(bench.tag())), RAW: raw(False)}
    if per_event:
        paths[PER_EVENT] = raw(True)
    try:
        for concurrency in bench.options.concurrency:
            await bench.compare(backend, concurrency, paths)
    finally:
        for work in workers:
            work.close()
        await close_all()


async def bench_dataapi(bench: Bench) -> None:
    async with dataapi_server() as base_url:
        bench.notes.append(
            f'Data API: localdev.dataapi_server (aiohttp + mongomock) in its own process; '
            f'{DATAAPI_DISTINCT_EVENTS} request ids per measurement, the rest redeliveries; '
            f'a new event is 4 POSTs (upsert, read back, count, marker off), a redelivery '
            f'2; raw sends the same.')
        clients: List[RawDataApiWork] = []

        def handler() -> Work:
            tag = bench.tag()
            return HandlerWork(handler_config(base_url, f'events_{tag}'),
                               EventFactory(tag, DATAAPI_DISTINCT_EVENTS))

        def raw(per_event: bool) -> Callable[[], Work]:
            def make() -> Work:
                tag = bench.tag()
                work = RawDataApiWork(base_url, f'events_{tag}',
                                      EventFactory(tag, DATAAPI_DISTINCT_EVENTS), per_event)
                clients.append(work)
                return work
            return make

        try:
            for concurrency in bench.options.concurrency:
                await bench.compare('dataapi', concurrency,
                                    {HANDLER: handler, RAW: raw(False), PER_EVENT: raw(True)})
        finally:
            for work in clients:
                await work.close()
            await close_all()


async def bench_e2e(bench: Bench, directory: str) -> None:
    path = os.path.join(directory, 'e2e.sqlite3')
    variables = {'DATABASE_URL': f'sqlite:///{path}',
                 'DATABASE_POOL_SIZE': str(bench.options.pool)}
    log_path = Path(directory) / 'runner.log'
    started = time.monotonic()
    async with runner_work(variables, EventFactory(bench.tag()), log_path) as deliver:
        bench.notes.append(f'End to end: connect-extension-runner (cextrun) against '
                           f'localdev.connect_emulator over TLS, SQLite; runner ready in '
                           f'{time.monotonic() - started:.1f}s.')
        shortest = E2E_MIN_SECONDS_QUICK if bench.options.quick else E2E_MIN_SECONDS
        duration = max(bench.options.duration, shortest)
        await bench.compare('e2e-sqlite', E2E_CONCURRENCY, {RUNNER: lambda: deliver},
                            rounds=1, duration=duration)


# -- the report -------------------------------------------------------------------------------

def table(bench: Bench) -> List[str]:
    lines = [f'{"backend":<11} {"conc":>4}  {"path":<9} {"events":>7} {"ev/s":>8} '
             f'{"p50 ms":>7} {"p99 ms":>7} {"failed":>6}']
    lines.append('-' * len(lines[0]))
    for result in bench.results:
        lines.append(
            f'{result.backend:<11} {result.concurrency:>4}  {result.path:<9} '
            f'{result.events:>7} {result.per_second:>8.0f} {result.p50_ms:>7.2f} '
            f'{result.p99_ms:>7.2f} {result.failures:>6}')
    return lines


def ratios(bench: Bench) -> List[str]:
    lines = [f'{"backend":<11} {"conc":>4}  {"handler/raw":>16}  {"pooled/per-event":>18}']
    lines.append('-' * len(lines[0]))
    for backend in ('sqlite', 'postgresql', 'dataapi'):
        for concurrency in bench.options.concurrency:
            handler = bench.find(backend, HANDLER, concurrency)
            if handler is None:
                continue
            raw = bench.find(backend, RAW, concurrency)
            per_event = bench.find(backend, PER_EVENT, concurrency)
            vs_raw = _ratio(handler, raw, HANDLER_VS_RAW_MIN
                            if (backend, concurrency) == ('postgresql', 32) else None)
            vs_per_event = _ratio(handler, per_event, POOLED_VS_PER_EVENT_MIN)
            lines.append(f'{backend:<11} {concurrency:>4}  {vs_raw:>16}  {vs_per_event:>18}')
    return lines


def _ratio(handler: Measurement, other: Optional[Measurement], target: Optional[float]) -> str:
    if other is None or not other.per_second:
        return '-'
    value = handler.per_second / other.per_second
    if target is None:
        return f'{value:.2f}'
    return f'{value:.2f} {"PASS" if value >= target else "MISS"}'


def report(bench: Bench, seconds: float) -> str:
    options = bench.options
    lines = [
        f'Machine: {machine.describe(bench.versions)}',
        f'Each row: the best of {options.rounds} round(s) of {options.duration:g}s after '
        f'{options.warmup:g}s of warm-up; pool size {options.pool} (DATABASE_POOL_SIZE) and '
        f'as many threads for handler and raw; new records unless noted.',
        *bench.notes,
        '',
        *table(bench),
        '',
        f'Ratios of events per second (targets: handler/raw >= {HANDLER_VS_RAW_MIN} on '
        f'PostgreSQL at concurrency 32; pooled handler/per-event client >= '
        f'{POOLED_VS_PER_EVENT_MIN:g}):',
        *ratios(bench),
        '',
        *([bench.reads, ''] if bench.reads else []),
        f'Total time {seconds:.0f}s.',
    ]
    return '\n'.join(lines)


def save(bench: Bench, text: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime('%Y%m%d-%H%M%S')
    (directory / f'bench-{stamp}.txt').write_text(text + '\n', encoding='utf-8')
    path = directory / f'bench-{stamp}.json'
    path.write_text(json.dumps({
        'machine': machine.describe(bench.versions),
        'options': {k: v for k, v in vars(bench.options).items() if k != 'output'},
        'results': [dict(asdict(r), per_second=r.per_second) for r in bench.results],
    }, indent=2), encoding='utf-8')
    return path


# -- command line -----------------------------------------------------------------------------

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m localdev.bench',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: short measurements, one round, concurrency 1 and 8')
    parser.add_argument('--backends', default=','.join(BACKENDS),
                        help=f'comma-separated, from {", ".join(BACKENDS)} (default: all)')
    parser.add_argument('--concurrency', help='comma-separated levels (default: 1,8,32)')
    parser.add_argument('--duration', type=float, help='seconds per measurement (default 2)')
    parser.add_argument('--warmup', type=float, help='seconds not counted (default 0.5)')
    parser.add_argument('--rounds', type=int, help='rounds per measurement (default 2)')
    parser.add_argument('--pool', type=int, default=8,
                        help='connections and threads, handler and raw alike (default 8)')
    parser.add_argument('--output', type=Path, default=REPO_ROOT / 'bench-results',
                        help='folder for the results (gitignored); "-" to write none')
    options = parser.parse_args(argv)
    quick = options.quick
    options.concurrency = [int(level) for level in
                           (options.concurrency or ('1,8' if quick else '1,8,32')).split(',')]
    options.duration = options.duration or (0.3 if quick else 2.0)
    options.warmup = options.warmup if options.warmup is not None else (0.1 if quick else 0.5)
    options.rounds = options.rounds or (1 if quick else 2)
    chosen = [name.strip() for name in options.backends.split(',') if name.strip()]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown or not chosen:
        parser.error(f'--backends: unknown {", ".join(unknown) or "(none given)"}; '
                     f'choose from {", ".join(BACKENDS)}')
    options.backends = chosen
    return options


async def run(options: argparse.Namespace) -> Bench:
    bench = Bench(options)
    with tempfile.TemporaryDirectory(prefix='bench-') as directory:
        if 'sqlite' in options.backends:
            await bench_sqlite(bench, directory)
        if 'postgresql' in options.backends:
            await bench_postgresql(bench)
        if 'dataapi' in options.backends:
            await bench_dataapi(bench)
        if 'e2e' in options.backends:
            await bench_e2e(bench, directory)
        if 'reads' in options.backends:
            bench.reads = await reads.bench(quick=options.quick)
    return bench


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parse_args(argv)
    started = time.monotonic()
    bench = asyncio.run(run(options))
    text = report(bench, time.monotonic() - started)
    print(text)
    if str(options.output) != '-':
        print(f'\nSaved to {save(bench, text, options.output)}')
    failed = sum(result.failures for result in bench.results)
    if failed:
        print(f'{failed} event(s) were not stored: see the "failed" column.', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
