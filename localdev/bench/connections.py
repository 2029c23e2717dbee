"""`python -m localdev.bench.connections`: the PostgreSQL connections real runners hold,
quiet and busy.

For 1, 2 and 4 runners (real `cextrun` instances through the emulation) on one fresh
database, and for each STORAGE_IDLE_SECONDS given (0 keeps connections for the life of each
process: the pools as they were before the idle closing):

- quiet after start: once the runners are set up and nothing happened for a while;
- peak under load: the most open while events flow, the Events page being read meanwhile;
- quiet after load: once nothing happened for a while again.

The server counts the connections (pg_stat_activity); the sockets each runner process holds
tell which worker holds them (background, interactive, webapp).

    python -m localdev.bench.connections [--quick] [--instances 1,2,4] [--idle 0,30]
        [--quiet-seconds S] [--code DIR]

`--code` runs the runners from another checkout of the extension (e.g. an older version
exported with `git archive`); the emulation and this bench stay the same.
"""
import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple
from urllib.parse import urlsplit

import httpx

from localdev.bench import machine as bench_machine
from localdev.bench.measure import Measurement, Work, measure
from localdev.bench.rss import group_members, process_name, worker_roles
from localdev.bench.scaleout import TASK_TIMEOUT, _levels, open_connections, task_deliverer
from localdev.bench.sql import postgres_database, postgres_version
from localdev.bench.workloads import EventFactory
from localdev.connect_emulator import ConnectEmulator
from localdev.connect_emulator.dispatch import DEFAULT_MAX_IN_FLIGHT
from localdev.connect_emulator.portal import LocalPortal
from localdev.offline import REPO_ROOT
from localdev.runner_fleet import RunnerFleet

#: Waited beyond the largest idle setting before a quiet count: the pools close on their
#: next look, and the server notices a closed connection a moment later.
QUIET_MARGIN_SECONDS = 3.0
SAMPLE_SECONDS = 0.25
ROLE_NAMES = {'background': 'bg', 'interactive': 'int', 'webapp': 'web'}
TCP_ESTABLISHED = '01'


@dataclass
class Count:
    """Connections the server counts, and those each kind of runner process holds."""

    server: int = 0
    by_role: Counter = field(default_factory=Counter)

    def describe(self) -> str:
        held = ', '.join(f'{ROLE_NAMES.get(role, role)} {count}'
                         for role, count in sorted(self.by_role.items()) if count)
        return f'{self.server:>3} ({held or "none"})'


@dataclass
class Row:
    idle: float
    instances: int
    quiet_after_start: Count
    peak: Count
    quiet_after_load: Count
    events_per_second: float
    failed: int
    reads: int
    failed_reads: int


# -- counting ---------------------------------------------------------------------------------

def socket_inodes(port: int) -> Set[str]:
    """Inodes of the established TCP connections whose remote port is `port`."""
    inodes = set()
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    remote_port = int(fields[2].rsplit(':', 1)[1], 16)
                    if fields[3] == TCP_ESTABLISHED and remote_port == port:
                        inodes.add(fields[9])
        except FileNotFoundError:
            continue
    return inodes


def sockets_held(pid: int, inodes: Set[str]) -> int:
    count = 0
    try:
        fds = os.listdir(f'/proc/{pid}/fd')
    except OSError:
        return 0  # ended meanwhile
    for fd in fds:
        try:
            target = os.readlink(f'/proc/{pid}/fd/{fd}')
        except OSError:
            continue
        count += target.startswith('socket:[') and target[8:-1] in inodes
    return count


def count(url: str, fleet: RunnerFleet, log_path: Path) -> Count:
    port = urlsplit(url).port or 5432
    inodes = socket_inodes(port)
    by_role: Counter = Counter()
    for runner in fleet.runners.values():
        roles = worker_roles(log_path, runner.pid)
        for pid in group_members(runner.pid):
            by_role[roles.get(pid) or process_name(pid)] += sockets_held(pid, inodes)
    return Count(open_connections(url), by_role)


# -- one setting ------------------------------------------------------------------------------

async def bench_setting(options: argparse.Namespace, url: str, idle: float, directory: Path,
                        numbers: Iterator[int]) -> List[Row]:
    quiet = options.quiet_seconds
    variables = {'DATABASE_URL': url, 'DATABASE_POOL_SIZE': str(options.pool),
                 'STORAGE_IDLE_SECONDS': f'{idle:g}'}
    events = EventFactory(1)
    log_path = directory / f'runners-idle-{idle:g}.log'
    rows = []
    async with ConnectEmulator(variables=variables, max_in_flight=options.in_flight) as emulator, \
            RunnerFleet(emulator, log_path=log_path, cwd=options.code) as fleet, \
            LocalPortal(emulator) as portal, \
            httpx.AsyncClient(trust_env=False, timeout=TASK_TIMEOUT) as browser:

        deliver = task_deliverer(emulator, events, log_path)

        for instances in options.instances:
            await fleet.start_all(instances)
            await asyncio.sleep(quiet)
            after_start = count(url, fleet, log_path)
            # The page's reads need an installation the emulation knows: one event first.
            await deliver(next(numbers))
            origin = await portal.installation_origin(events.installation['id'])
            peak, reads, result = await under_load(
                options, url, fleet, log_path, deliver, browser, f'{origin}/api/events',
                instances, numbers)
            await asyncio.sleep(quiet)
            rows.append(Row(idle, instances, after_start, peak, count(url, fleet, log_path),
                            result.per_second, result.failures, *reads))
            _progress(rows[-1])
    return rows


async def under_load(
    options: argparse.Namespace, url: str, fleet: RunnerFleet, log_path: Path, deliver: Work,
    browser: httpx.AsyncClient, page_url: str, instances: int, numbers: Iterator[int],
) -> Tuple[Count, Tuple[int, int], Measurement]:
    """Events through every runner and the Events page read meanwhile; the peak count."""
    done = asyncio.Event()
    peak = Count()
    reads = Counter()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            now = count(url, fleet, log_path)
            if now.server > peak.server:
                peak = now
            await asyncio.sleep(SAMPLE_SECONDS)

    async def read_pages() -> None:
        while not done.is_set():
            response = await browser.get(page_url)
            reads['ok' if response.status_code == 200 else 'failed'] += 1
            await asyncio.sleep(SAMPLE_SECONDS)

    helpers = [asyncio.ensure_future(sample()), asyncio.ensure_future(read_pages())]
    try:
        result = await measure(deliver, backend='runners', path=f'{instances}',
                               concurrency=instances * options.in_flight,
                               duration=options.load_seconds, warmup=0, numbers=numbers)
    finally:
        done.set()
        await asyncio.gather(*helpers)
    return peak, (reads['ok'], reads['failed']), result


# -- the report -------------------------------------------------------------------------------

def table(rows: List[Row]) -> List[str]:
    lines = [f'{"idle s":>6}  {"runners":>7}  {"quiet after start":<26}  '
             f'{"peak under load":<26}  {"quiet after load":<26}  {"ev/s":>6}  {"reads":>5}  '
             f'{"failed":>6}']
    lines.append('-' * len(lines[0]))
    for row in rows:
        lines.append(
            f'{row.idle:>6g}  {row.instances:>7}  {row.quiet_after_start.describe():<26}  '
            f'{row.peak.describe():<26}  {row.quiet_after_load.describe():<26}  '
            f'{row.events_per_second:>6.1f}  {row.reads:>5}  {row.failed + row.failed_reads:>6}')
    return lines


def report(options: argparse.Namespace, rows: List[Row], versions: Dict[str, str],
           load: Tuple[Tuple[float, ...], Tuple[float, ...]], seconds: float) -> str:
    code = 'this checkout' if options.code == REPO_ROOT else str(options.code)
    return '\n'.join([
        f'Machine: {bench_machine.describe(versions)}',
        f'Load average (1, 5, 15 min): {_load(load[0])} at the start, {_load(load[1])} at '
        f'the end.',
        f'Runners: connect-extension-runner (cextrun) against localdev.connect_emulator, '
        f'running the extension of {code}; DATABASE_POOL_SIZE {options.pool}; '
        f'{options.in_flight} tasks in flight per runner for {options.load_seconds:g}s under '
        f'load, the Events page read every {SAMPLE_SECONDS:g}s meanwhile; quiet counts '
        f'{options.quiet_seconds:g}s after the last activity.',
        'Connections to the database (pg_stat_activity), and in brackets the runner '
        'processes holding them (bg background, int interactive, web webapp worker); '
        'idle s is STORAGE_IDLE_SECONDS (0: kept for the life of the process):',
        *table(rows),
        f'Total time {seconds:.0f}s.',
    ])


def _load(averages: Tuple[float, ...]) -> str:
    return ', '.join(f'{value:.2f}' for value in averages)


def _progress(row: Row) -> None:
    print(f'  idle {row.idle:g}s, {row.instances} runner(s): quiet {row.quiet_after_start.server}'
          f', peak {row.peak.server}, quiet again {row.quiet_after_load.server}',
          file=sys.stderr, flush=True)


# -- command line -----------------------------------------------------------------------------

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m localdev.bench.connections',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: 1 and 2 runners, idle settings 0 and 3 s, 3 s of '
                             'load with 4 tasks in flight each')
    parser.add_argument('--instances', help='comma-separated runner counts (default: 1,2,4)')
    parser.add_argument('--idle', help='comma-separated STORAGE_IDLE_SECONDS to compare '
                                       '(default: 0,30)')
    parser.add_argument('--load-seconds', type=float, help='seconds of load (default 10)')
    parser.add_argument('--in-flight', type=int,
                        help=f'tasks each runner holds at once (default {DEFAULT_MAX_IN_FLIGHT})')
    parser.add_argument('--pool', type=int, default=8,
                        help='DATABASE_POOL_SIZE of each runner (default 8, its own default)')
    parser.add_argument('--quiet-seconds', type=float,
                        help='wait before a quiet count (default: the largest --idle + '
                             f'{QUIET_MARGIN_SECONDS:g})')
    parser.add_argument('--code', type=Path, default=REPO_ROOT,
                        help='the checkout whose extension the runners run (default: this one)')
    options = parser.parse_args(argv)
    quick = options.quick
    try:
        options.instances = _levels(options.instances or ('1,2' if quick else '1,2,4'))
        options.idle = sorted({float(part) for part in
                               (options.idle or ('0,3' if quick else '0,30')).split(',')})
    except ValueError as error:
        parser.error(str(error))
    if options.idle[0] < 0:
        parser.error('--idle: seconds must be 0 or more')
    if options.quiet_seconds is None:
        options.quiet_seconds = options.idle[-1] + QUIET_MARGIN_SECONDS
    options.load_seconds = options.load_seconds or (3.0 if quick else 10.0)
    options.in_flight = options.in_flight or (4 if quick else DEFAULT_MAX_IN_FLIGHT)
    options.code = options.code.resolve()
    if not (options.code / 'connect_mongodb_example').is_dir():
        parser.error(f'--code: {options.code} holds no connect_mongodb_example package')
    return options


async def run(options: argparse.Namespace) -> Tuple[List[Row], Dict[str, str]]:
    rows: List[Row] = []
    numbers = itertools.count()
    with tempfile.TemporaryDirectory(prefix='bench-connections-') as directory, \
            postgres_database() as (url, _):
        versions = {'PostgreSQL': postgres_version(url)}
        for idle in options.idle:
            rows.extend(await bench_setting(options, url, idle, Path(directory), numbers))
    return rows, versions


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parse_args(argv)
    started = time.monotonic()
    load_before = os.getloadavg()
    rows, versions = asyncio.run(run(options))
    print(report(options, rows, versions, (load_before, os.getloadavg()),
                 time.monotonic() - started))
    failed = sum(row.failed + row.failed_reads for row in rows)
    if failed:
        print(f'{failed} event(s) or read(s) did not succeed: see the "failed" column.',
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
