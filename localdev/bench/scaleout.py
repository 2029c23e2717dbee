"""`python -m localdev.bench.scaleout`: the extension scaled out over several real runners.

Three tables from one run (ratios taken in the same run, since the machine is shared):

1. events per second end to end with 1, 2 and 4 runner instances on one database, at 0 and
   50 ms of latency on every Connect API call, and the ratio to one instance;
2. the same runs with a no-op events extension (localdev/noop_extension.py) through the
   same runner and emulation: extension/no-op is the extension's share of the cost;
3. memory: RSS of each runner's processes at the start, peak and end of a run of at least
   10,000 events.

    python -m localdev.bench.scaleout [--quick] [--database postgresql|sqlite]
"""
import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
from collections import Counter
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import psycopg2

from localdev.bench import machine as bench_machine
from localdev.bench.measure import Measurement, measure
from localdev.bench.rss import (
    ProcessMemory,
    RunnerMemory,
    process_name,
    sample_until,
    worker_roles,
)
from localdev.bench.sql import postgres_database, postgres_version
from localdev.bench.workloads import EventFactory
from localdev.connect_emulator import ConnectEmulator, Event
from localdev.connect_emulator.dispatch import DEFAULT_MAX_IN_FLIGHT
from localdev.noop_extension import entry_point_path
from localdev.offline import REPO_ROOT
from localdev.runner_fleet import RunnerFleet

EXTENSION, NOOP = 'extension', 'no-op'
DATABASES = ('postgresql', 'sqlite')
#: Longest wait for one task's result: a runner that stops answering fails the run.
TASK_TIMEOUT = 120
MIB = 1024 * 1024


def task_deliverer(
    emulator: ConnectEmulator, events: EventFactory, log_path: Path,
) -> Callable[[int], Awaitable[bool]]:
    """`deliver(n)`: delivers event `n` of `events` as one task and waits for its result;
    whether the runner answered success. No result within TASK_TIMEOUT stops the bench."""

    async def deliver(n: int) -> bool:
        event = Event(events.request(n), events.installation)
        try:
            delivery = await asyncio.wait_for(emulator.deliver(event), TASK_TIMEOUT)
        except asyncio.TimeoutError:
            raise RuntimeError(f'no result for {event.request_id} within {TASK_TIMEOUT}s; '
                               f'see {log_path}') from None
        return [result.result for result in delivery.results] == ['success']

    return deliver


@dataclass(frozen=True)
class Run:
    """One throughput measurement: which extension, how many runners, what API latency."""

    extension: str
    instances: int
    latency_ms: int
    measurement: Measurement

    @property
    def per_second(self) -> float:
        return self.measurement.per_second


@dataclass(frozen=True)
class MemoryRow:
    runner: str
    process: str
    tasks: Optional[int]
    memory: ProcessMemory


class ScaleOutBench:
    def __init__(self, options: argparse.Namespace):
        self.options = options
        self.runs: List[Run] = []
        self.memory: List[MemoryRow] = []
        self.memory_events = 0
        self.memory_seconds = 0.0
        self.notes: List[str] = []
        self.versions: Dict[str, str] = {}
        self.redelivered = 0
        # Event numbers, shared by every measurement: each event is a new record.
        self.numbers = itertools.count()

    def find(self, extension: str, instances: int, latency_ms: int) -> Optional[Run]:
        for run in self.runs:
            if (run.extension, run.instances, run.latency_ms) == (
                    extension, instances, latency_ms):
                return run
        return None


@contextmanager
def database(kind: str, directory: str) -> Iterator[Tuple[str, str, Dict[str, str]]]:
    """(URL, description, versions) of a fresh database the runners share."""
    if kind == 'sqlite':
        yield f'sqlite:///{directory}/scaleout.sqlite3', 'SQLite (one file)', {}
        return
    with postgres_database() as (url, where):
        yield url, f'PostgreSQL on {where}', {'PostgreSQL': postgres_version(url)}


async def bench_extension(
    bench: ScaleOutBench, extension: str, url: str, directory: Path,
) -> None:
    """Throughput at every instance count and latency; memory, for the extension."""
    options = bench.options
    env = {}
    if extension == NOOP:
        path = entry_point_path(str(directory / 'noop-entry-point'))
        env['PYTHONPATH'] = os.pathsep.join(filter(None, [path, os.environ.get('PYTHONPATH')]))
    variables = {'DATABASE_URL': url, 'DATABASE_POOL_SIZE': str(options.pool)}
    events = EventFactory(1 if extension == EXTENSION else 2)
    log_path = directory / f'runners-{extension}.log'
    async with ConnectEmulator(variables=variables, max_in_flight=options.in_flight) as emulator, \
            RunnerFleet(emulator, log_path=log_path, cwd=REPO_ROOT, env=env) as fleet:

        deliver = task_deliverer(emulator, events, log_path)

        for count in options.instances:
            await fleet.start_all(count)
            for latency_ms in options.latencies:
                emulator.latency.seconds = latency_ms / 1000
                result = await measure(
                    deliver, backend=extension, path=f'{count}x{latency_ms}ms',
                    concurrency=count * options.in_flight, duration=options.duration,
                    warmup=options.warmup, numbers=bench.numbers,
                )
                bench.runs.append(Run(extension, count, latency_ms, result))
                _progress(bench.runs[-1])
        if extension == EXTENSION:
            emulator.latency.seconds = 0
            await bench_memory(bench, emulator, fleet, deliver, log_path)
            if not url.startswith('sqlite'):
                bench.notes.append(
                    f'PostgreSQL connections open from {len(fleet.runners)} runner(s) after '
                    f'the memory run: {open_connections(url)} (pool size {options.pool}).')
        bench.redelivered += len(emulator.channel.workers.redeliveries)


async def bench_memory(bench: ScaleOutBench, emulator: ConnectEmulator, fleet: RunnerFleet,
                       deliver, log_path: Path) -> None:
    """`memory_events` events through every runner of the fleet, RSS sampled meanwhile."""
    runners = {name: RunnerMemory(runner.pid) for name, runner in fleet.runners.items()}
    answered_before = Counter(result.instance_id for result in emulator.channel.results)
    numbers = itertools.islice(bench.numbers, bench.options.memory_events)
    for runner in runners.values():
        runner.sample()  # the start: after the throughput runs warmed the runners up
    done = asyncio.Event()
    sampler = asyncio.ensure_future(sample_until(list(runners.values()), done))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for number in numbers:
            failures += not await deliver(number)

    started = time.monotonic()
    try:
        await asyncio.gather(*(worker() for _ in range(len(runners) * bench.options.in_flight)))
    finally:
        done.set()
        await sampler
    bench.memory_seconds = time.monotonic() - started
    bench.memory_events = bench.options.memory_events - failures
    answered = Counter(result.instance_id for result in emulator.channel.results)
    for name, memory in runners.items():
        tasks = answered[fleet.instance_id(name)] - answered_before[fleet.instance_id(name)]
        roles = worker_roles(log_path, memory.master)
        for pid, process in sorted(memory.processes.items()):
            role = roles.get(pid) or process_name(pid)
            bench.memory.append(MemoryRow(
                name, role, tasks if role == 'background' else None, process))
        if memory.total is not None:
            bench.memory.append(MemoryRow(name, 'all', tasks, memory.total))


def open_connections(url: str) -> int:
    """Connections to the database of `url`, other than the one asking."""
    with closing(psycopg2.connect(url, connect_timeout=5)) as connection, \
            connection.cursor() as cursor:
        cursor.execute('SELECT count(*) FROM pg_stat_activity '
                       'WHERE datname = current_database() AND pid <> pg_backend_pid()')
        return cursor.fetchone()[0]


def _progress(run: Run) -> None:
    print(f'  {run.extension:<9} {run.instances} instance(s) {run.latency_ms:>3} ms  '
          f'{run.per_second:7.1f} ev/s', file=sys.stderr, flush=True)


# -- the report -------------------------------------------------------------------------------

def throughput_table(bench: ScaleOutBench) -> List[str]:
    lines = [f'{"latency":>7}  {"instances":>9}  {"events":>6}  {"ev/s":>7}  '
             f'{"ev/s/instance":>13}  {"vs 1 instance":>13}  {"failed":>6}']
    lines.append('-' * len(lines[0]))
    for latency_ms in bench.options.latencies:
        one = bench.find(EXTENSION, 1, latency_ms)
        for count in bench.options.instances:
            run = bench.find(EXTENSION, count, latency_ms)
            if run is None:
                continue
            ratio = (f'{run.per_second / one.per_second:.2f}'
                     if one is not None and one.per_second else '-')
            lines.append(
                f'{latency_ms:>4} ms  {count:>9}  {run.measurement.events:>6}  '
                f'{run.per_second:>7.1f}  {run.per_second / count:>13.1f}  {ratio:>13}  '
                f'{run.measurement.failures:>6}')
    return lines


def noop_table(bench: ScaleOutBench) -> List[str]:
    lines = [f'{"latency":>7}  {"instances":>9}  {"extension ev/s":>14}  {"no-op ev/s":>10}  '
             f'{"extension/no-op":>15}']
    lines.append('-' * len(lines[0]))
    for latency_ms in bench.options.latencies:
        for count in bench.options.instances:
            extension = bench.find(EXTENSION, count, latency_ms)
            noop = bench.find(NOOP, count, latency_ms)
            if extension is None or noop is None:
                continue
            ratio = f'{extension.per_second / noop.per_second:.2f}' if noop.per_second else '-'
            lines.append(f'{latency_ms:>4} ms  {count:>9}  {extension.per_second:>14.1f}  '
                         f'{noop.per_second:>10.1f}  {ratio:>15}')
    return lines


def memory_table(bench: ScaleOutBench) -> List[str]:
    lines = [f'{"runner":>6}  {"process":<12} {"tasks":>6}  {"start MiB":>9}  '
             f'{"peak MiB":>8}  {"final MiB":>9}']
    lines.append('-' * len(lines[0]))
    for row in bench.memory:
        tasks = '-' if row.tasks is None else str(row.tasks)
        lines.append(f'{row.runner:>6}  {row.process:<12} {tasks:>6}  '
                     f'{row.memory.first / MIB:>9.1f}  {row.memory.peak / MIB:>8.1f}  '
                     f'{row.memory.last / MIB:>9.1f}')
    return lines


def report(bench: ScaleOutBench, seconds: float) -> str:
    options = bench.options
    largest = max(options.instances)
    lines = [
        f'Machine: {bench_machine.describe(bench.versions)}',
        *bench.notes,
        f'Each throughput row: {options.duration:g}s measured after {options.warmup:g}s of '
        f'warm-up, {options.in_flight} tasks in flight per instance; latency is added '
        f'to every Connect API call (the runner makes 3 per task).',
        '',
        'Events per second end to end, the extension, by runner instances:',
        *throughput_table(bench),
        '',
        'The extension against a no-op events extension, same runner and emulation:',
        *noop_table(bench),
        '',
        f"Memory (RSS) of each runner's processes over {bench.memory_events} events through "
        f'{largest} instance(s) in {bench.memory_seconds:.0f}s '
        f'({bench.memory_events / bench.memory_seconds if bench.memory_seconds else 0:.1f} '
        f'ev/s); "all" is the runner\'s processes together:',
        *memory_table(bench),
        '',
        f'Tasks redelivered by the emulation: {bench.redelivered}. Total time {seconds:.0f}s.',
    ]
    return '\n'.join(lines)


# -- command line -----------------------------------------------------------------------------

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m localdev.bench.scaleout',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: 1 and 2 instances, 4 tasks in flight each, short '
                             'measurements, 50 events for memory')
    parser.add_argument('--database', choices=DATABASES, default='postgresql',
                        help='the database the runners share (default: postgresql)')
    parser.add_argument('--instances', help='comma-separated runner counts (default: 1,2,4)')
    parser.add_argument('--latencies-ms', default='0,50',
                        help='comma-separated API latencies in ms (default: 0,50)')
    parser.add_argument('--duration', type=float, help='seconds per measurement (default 10)')
    parser.add_argument('--warmup', type=float, help='seconds not counted (default 5)')
    parser.add_argument('--in-flight', type=int,
                        help='tasks each instance holds at once, as Connect pushes a backlog '
                             f'(default {DEFAULT_MAX_IN_FLIGHT})')
    parser.add_argument('--memory-events', type=int,
                        help='events of the memory run (default 10000)')
    parser.add_argument('--pool', type=int, default=4,
                        help='DATABASE_POOL_SIZE of each runner (default 4)')
    options = parser.parse_args(argv)
    quick = options.quick
    try:
        options.instances = _levels(options.instances or ('1,2' if quick else '1,2,4'))
        options.latencies = _levels(options.latencies_ms, minimum=0)
    except ValueError as error:
        parser.error(str(error))
    options.duration = options.duration or (1.0 if quick else 10.0)
    options.warmup = options.warmup if options.warmup is not None else (0.5 if quick else 5.0)
    options.memory_events = options.memory_events or (50 if quick else 10_000)
    options.in_flight = options.in_flight or (4 if quick else DEFAULT_MAX_IN_FLIGHT)
    if min(options.memory_events, options.pool, options.in_flight) < 1:
        parser.error('--memory-events, --pool and --in-flight must be 1 or more')
    return options


def _levels(text: str, minimum: int = 1) -> List[int]:
    try:
        levels = sorted({int(part) for part in text.split(',') if part.strip()})
    except ValueError:
        raise ValueError(f'expected comma-separated whole numbers, got {text!r}') from None
    if not levels or levels[0] < minimum:
        raise ValueError(f'expected whole numbers of {minimum} or more, got {text!r}')
    return levels


async def run(options: argparse.Namespace) -> ScaleOutBench:
    bench = ScaleOutBench(options)
    with tempfile.TemporaryDirectory(prefix='bench-scaleout-') as directory, \
            database(options.database, directory) as (url, description, versions):
        bench.versions.update(versions)
        bench.notes.append(
            f'connect-extension-runner (cextrun) instances against localdev.connect_emulator '
            f'over TLS, sharing {description}; DATABASE_POOL_SIZE {options.pool} per runner.')
        for extension in (EXTENSION, NOOP):
            await bench_extension(bench, extension, url, Path(directory))
    return bench


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parse_args(argv)
    started = time.monotonic()
    bench = asyncio.run(run(options))
    print(report(bench, time.monotonic() - started))
    failed = sum(run.measurement.failures for run in bench.runs)
    failed += options.memory_events - bench.memory_events
    if failed:
        print(f'{failed} event(s) did not succeed: see the "failed" column.', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
