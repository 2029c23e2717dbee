"""`make demo`: the real extension runner processes sample events offline, and they are stored.

Seeds the history of demo/events/history/ into the storage, starts the Connect emulation
and `cextrun`, delivers every event file of demo/events/ (purchase requests, installation
status changes, runs of the data lifecycle job), waits for every result, stops the runner,
then reads back what the extension stored (through its own storage interface) and prints
it. Exits 1 if something that should have happened did not (an event not stored, a job
that failed or left due events; an event its input says to skip or fail is no failure), 2
on bad input.

    python -m localdev.demo --help
"""
import argparse
import asyncio
import contextlib
import difflib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence
from urllib.parse import urlsplit

from connect_mongodb_example.errors import ConfigurationError
from connect_mongodb_example.settings import all_variables, load_settings, variable_declarations
from localdev import mongodb_server
from localdev.connect_emulator import (
    ConnectEmulator,
    Delivery,
    Event,
    EventFileError,
    InstallationChange,
    Item,
    ScheduleRun,
    load_items,
)
from localdev.connect_emulator.events import load_event
from localdev.connect_emulator.portal import LocalPortal
from localdev.connect_emulator.protocol import variable_values
from localdev.connect_emulator.websocket import RunnerDisconnected
from localdev.demo_history import HISTORY_AGE_DAYS, history_events, seed_history
from localdev.demo_report import Table, exit_code, page_line, report_lines
from localdev.demo_session import DemoSession, JobRow, Readback
from localdev.demo_summary import job_lines, remaining_counts, summary
from localdev.offline import REPO_ROOT, RunnerNotReady, offline_runner
from localdev.runner_process import RunnerExited, log_tail

DEMO_DIR = REPO_ROOT / '.demo'
DEFAULT_EVENTS = REPO_ROOT / 'demo' / 'events'
DEFAULT_VARIABLES = REPO_ROOT / 'demo' / 'variables.json'
DEFAULT_LOG = DEMO_DIR / 'runner.log'
DEFAULT_TIMEOUT = 120.0
LOG_FORMAT = '%(asctime)s %(name)s %(levelname)s PID_%(process)d %(message)s'
WATCH_INTERVAL_SECONDS = 1.0
WEB_WORKER_WAIT_SECONDS = 30
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DemoError(Exception):
    """Bad input the user can fix (exit code 2); the message says which."""


class DemoFailed(Exception):
    """The run went wrong (exit code 1); the runner log says more."""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m localdev.demo',
        description='Run the extension through the real connect-extension-runner against a '
                    'local emulation of Connect, deliver purchase-request events from JSON '
                    'files, and show what was stored. No network or Connect account needed.',
    )
    parser.add_argument(
        '--events', type=Path, default=DEFAULT_EVENTS, metavar='DIR',
        help='folder of event files, delivered in name order (default: demo/events)',
    )
    parser.add_argument(
        '--variables', type=Path, default=DEFAULT_VARIABLES, metavar='FILE',
        help='JSON object of extension variables, NAME: "value" (default: demo/variables.json)',
    )
    parser.add_argument(
        '--set', action='append', default=[], metavar='NAME=VALUE', dest='assignments',
        help='set one more variable, over the file (repeatable)',
    )
    parser.add_argument(
        '--timeout', type=float, default=DEFAULT_TIMEOUT, metavar='SECONDS',
        help=f'longest wait for the runner to start and answer every event '
             f'(default: {DEFAULT_TIMEOUT:g})',
    )
    parser.add_argument(
        '--log-file', type=Path, default=DEFAULT_LOG, metavar='FILE',
        help='runner and emulation log (default: .demo/runner.log)',
    )
    parser.add_argument(
        '--schedule', nargs='?', const='', default=None, metavar='INSTALLATION',
        help="after the events, run the extension's schedulable method (the data lifecycle "
             'job) once, as its schedule would; with an installation id (EIN-...), the '
             "schedule's parameter names it and the job handles that installation only",
    )
    parser.add_argument(
        '--keep-running', action='store_true',
        help='after the table, keep the runner up and deliver event files added to (or '
             'changed in) the events folder, until Ctrl+C',
    )
    parser.add_argument(
        '--instances', type=_positive_int, default=1, metavar='N',
        help='runners sharing the events, each with its own INSTANCE_ID, as when the '
             'extension is scaled out (default: 1)',
    )
    parser.add_argument(
        '--api-latency-ms', type=float, default=0.0, metavar='MS',
        help='delay every emulated Connect API call by this much, for a realistic per-task '
             'cost (default: 0)',
    )
    parser.add_argument(
        '--keep-data', action='store_true',
        help='do not clear the demo database under .demo/ first (other databases are '
             'never cleared)',
    )
    parser.add_argument(
        '--mongodb-local', action='store_true',
        help='store in a throwaway MongoDB-compatible server (SecantusDB) too: sets '
             'MONGODB_URI, and STORAGE_BACKENDS=sql,mongodb unless --set gives it; its data '
             'is gone when the demo ends',
    )
    parser.add_argument(
        '--debug', action='store_true',
        help='runner and extension at DEBUG; the log then holds every variable value, secure '
             'ones (passwords, keys) included, so a failure prints only its warning and error '
             'lines',
    )
    options = parser.parse_args(argv)
    if options.api_latency_ms < 0:
        parser.error('--api-latency-ms must be 0 or more')
    return options


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f'expected a whole number of 1 or more, got {text!r}')
    return int(text)


def load_variables(
    path: Path, assignments: Sequence[str] = (), warn: Optional[Callable[[str], None]] = None,
) -> Dict[str, str]:
    """The variables file (a JSON object of strings) plus NAME=VALUE assignments. A name the
    extension does not read is passed on all the same, with a warning naming the nearest
    one it reads: a misspelt name would otherwise leave its default in force, silently."""
    warn = warn or _print_warning
    try:
        document = json.loads(path.read_text(encoding='utf-8'))
    except OSError as error:
        raise DemoError(f'variables file {path}: cannot be read: {error}') from None
    except ValueError as error:
        raise DemoError(f'variables file {path}: not valid JSON: {error}') from None
    if not isinstance(document, dict):
        raise DemoError(f'variables file {path}: must hold a JSON object of NAME: "value"')
    variables = {}
    for name, value in document.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise DemoError(f'variables file {path}: {name} must be a string, got {value!r}')
        variables[name] = str(value)
    _warn_undeclared(document, f'variables file {path}', warn)
    for assignment in assignments:
        name, equals, value = assignment.partition('=')
        if not equals or not name.strip():
            raise DemoError(f'--set {assignment!r}: expected NAME=VALUE')
        variables[name.strip()] = value
        _warn_undeclared([name.strip()], f'--set {name.strip()}', warn)
    return variables


def _warn_undeclared(names: Iterable[str], where: str, warn: Callable[[str], None]) -> None:
    known = [name for variable in all_variables() for name in (variable.name, *variable.aliases)]
    for name in names:
        if name in known:
            continue
        nearest = difflib.get_close_matches(name, known, n=1)
        hint = f' (did you mean {nearest[0]}?)' if nearest else ''
        warn(f'{where}: {name} is not a variable of the extension{hint}; nothing reads it')


def _print_warning(message: str) -> None:
    print(f'Warning: {message}', file=sys.stderr)


def check_variables(variables: Dict[str, str]) -> None:
    """Fail before the runner starts if the extension would refuse its configuration."""
    try:
        load_settings(variable_values(variable_declarations(), variables))
    except ConfigurationError as error:
        raise DemoError(f'the extension would refuse its variables: {error}') from None


def scratch_database(variables: Dict[str, str]) -> Optional[Path]:
    """The SQLite file of DATABASE_URL if it lives under .demo/ (the demo's own space)."""
    url = variables.get('DATABASE_URL', '')
    parts = urlsplit(url)
    if parts.scheme.lower() != 'sqlite' or parts.netloc:
        return None
    path = (REPO_ROOT / parts.path[1:]).resolve()
    return path if DEMO_DIR.resolve() in path.parents else None


def clear_scratch_database(variables: Dict[str, str]) -> None:
    database = scratch_database(variables)
    if database is None:
        return
    for suffix in ('', '-wal', '-shm'):
        Path(f'{database}{suffix}').unlink(missing_ok=True)


def configure_logging(log_path: Path, debug: bool) -> logging.Handler:
    """The emulation logs to the runner's log file: both sides of the protocol in one place."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_bytes(b'')
    handler = logging.FileHandler(log_path, mode='a', encoding='utf-8')
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    return handler


async def run_until_signal(options: argparse.Namespace) -> int:
    """`run`, cancelled by SIGINT or SIGTERM so that the runner is always stopped first;
    further signals while it stops are ignored rather than leaving it orphaned."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def interrupted() -> None:
        print('Stopping the runner ...', file=sys.stderr)
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, lambda: None)
        task.cancel()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, interrupted)
    try:
        with mongodb_server.for_demo(options.mongodb_local, options.assignments):
            return await run(options)
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def run(options: argparse.Namespace) -> int:
    items = load_items(options.events)
    history = history_events(options.events)
    if options.schedule is not None:
        parameter = {'installation_id': options.schedule} if options.schedule else {}
        items.append(ScheduleRun(parameter=parameter, source='--schedule'))
    variables = load_variables(options.variables, options.assignments)
    check_variables(variables)
    if not options.keep_data:
        clear_scratch_database(variables)
    deadline = time.monotonic() + options.timeout
    log_path = options.log_file
    seeding_problems = await seed_history(
        history, variable_values(variable_declarations(), variables))
    if history:
        print(f'Seeded {len(history)} history events into the storage, as received '
              f'{HISTORY_AGE_DAYS} days ago.')
    print(f'Starting the Connect emulation and the extension runner (log: {log_path}) ...')
    started = time.monotonic()
    table = Table()
    async with offline_runner(
        variables=variables, log_path=log_path, ready_timeout=options.timeout,
        debug=options.debug, instances=options.instances,
        api_latency=options.api_latency_ms / 1000,
    ) as emulator:
        session = DemoSession(emulator, history, seeding_problems)
        async with LocalPortal(emulator, actions=PortalActions(session, table)) as portal:
            print(f'Runner ready after {time.monotonic() - started:.1f}s; delivering '
                  f'{describe_items(items)} from {options.events} ...')
            print(f'Events pages: {portal.url} (served while the demo runs; --keep-running '
                  f'keeps them up)')
            await _deliver_before(session, items, deadline)
            if options.keep_running:
                print_report(await session.read_back(), table)
                await print_portal(emulator, portal)
                await watch_events(session, options.events, table)
                return 0
    # The runner is stopped: what is read now has outlived it.
    readback = await session.read_back()
    print_report(readback, table)
    _warn_unknown_calls(emulator)
    code = exit_code(readback.rows)
    if code:
        print(f"Not everything that should have happened did; the runner's side is in "
              f'{log_path}.', file=sys.stderr)
    return code


def describe_items(items: List[Item]) -> str:
    """'8 events (9 deliveries), 1 installation status change and 1 job run'."""
    events = [item for item in items if isinstance(item, Event)]
    parts = [f'{len(events)} events ({sum(event.deliveries for event in events)} deliveries)']
    for kind, name in ((InstallationChange, 'installation status change'),
                       (ScheduleRun, 'job run')):
        count = sum(isinstance(item, kind) for item in items)
        if count:
            parts.append(f'{count} {name}{"s" if count > 1 else ""}')
    return ' and '.join([', '.join(parts[:-1]), parts[-1]]) if len(parts) > 1 else parts[0]


def print_log_excerpt(log_path: Path, problems_only: bool) -> None:
    """What the log says about a failure: its last lines, or only its warning and error
    lines (at DEBUG the runner logs its whole setup, secure variable values included)."""
    if problems_only:
        print(f'--- warnings and errors in {log_path} ---\n{_log_problems(log_path)}',
              file=sys.stderr)
    else:
        print(f'--- last lines of {log_path} ---\n{log_tail(log_path).rstrip() or "(no log)"}',
              file=sys.stderr)


async def _deliver_before(
    session: DemoSession, items: List[Item], deadline: float,
) -> List[Delivery]:
    remaining = max(deadline - time.monotonic(), 0.1)
    try:
        return await asyncio.wait_for(session.deliver(items), remaining)
    except asyncio.TimeoutError:
        answered = {id(delivery.event) for delivery in session.emulator.deliveries}
        missing = [item for item in items if id(item) not in answered]
        raise DemoFailed(
            f'{len(missing)} of {len(items)} events got no result before the timeout: '
            + ', '.join(f'{item.subject} ({getattr(item, "status", "job")})' for item in missing)
            + ' (try a longer --timeout; the log says what the runner was doing)',
        ) from None


async def print_portal(emulator: ConnectEmulator, portal: LocalPortal) -> None:
    """Where to see the stored events, once the runner's web worker takes calls."""
    try:
        await asyncio.wait_for(emulator.web.wait_ready(), WEB_WORKER_WAIT_SECONDS)
    except asyncio.TimeoutError:
        print(f'\nNo runner web worker connected within {WEB_WORKER_WAIT_SECONDS}s: the '
              f'Events pages cannot be served (the runner log says why).')
        return
    print(f'\nOpen {portal.url} to see the events of each installation and their '
          f'timelines, read back by the web application of the extension through the runner.')


async def watch_events(session: DemoSession, directory: Path, table: Table) -> None:
    """Deliver event files as they are added or changed, until interrupted."""
    print(f'\nWatching {directory} for new or changed event files; Ctrl+C to stop.')
    seen = _snapshot(directory)
    while True:
        await asyncio.sleep(WATCH_INTERVAL_SECONDS)
        current = _snapshot(directory)
        for path in sorted(set(current.items()) - set(seen.items())):
            await _deliver_file(session, Path(path[0]), table)
        seen = current


def _snapshot(directory: Path) -> Dict[str, int]:
    snapshot = {}
    for path in directory.glob('*.json'):
        with contextlib.suppress(FileNotFoundError):  # removed since it was listed
            snapshot[str(path)] = path.stat().st_mtime_ns
    return snapshot


async def _deliver_file(session: DemoSession, path: Path, table: Table) -> None:
    try:
        await deliver_and_print(session, load_event(path), table)
    except EventFileError as error:
        print(f'  skipped: {error}')


async def deliver_and_print(session: DemoSession, item: Item, table: Table) -> Readback:
    """Deliver one item while the demo runs on; print its rows under the table."""
    readback = await session.read_back(await session.deliver([item]))
    print('\n'.join(report_lines(readback.rows, table, header=False)))
    jobs = [row for row in readback.rows if isinstance(row, JobRow) and not row.delivery.not_sent]
    for row in jobs:
        print('\n'.join(job_lines(row, readback.settings)))
    if jobs:
        print(f'Events stored now, per installation: {remaining_counts(readback)}.')
    return readback


class PortalActions:
    """What the local portal's buttons do in the demo: deliver the item through the session
    (read back before and after), print its rows, and say in one line what happened."""

    def __init__(self, session: DemoSession, table: Table):
        self.session = session
        self.table = table

    async def deliver(self, item: Item) -> str:
        readback = await deliver_and_print(self.session, item, self.table)
        return '; '.join(page_line(row) for row in readback.rows)


def print_report(readback: Readback, table: Table) -> None:
    print()
    print('\n'.join(report_lines(readback.rows, table)))
    print(f'\n{summary(readback)}')


def _warn_unknown_calls(emulator: ConnectEmulator) -> None:
    for call in emulator.unknown_calls:
        print(f'Note: the runner called {call.method} {call.path}, which the emulation does '
              f'not serve (see localdev/connect_emulator/rest.py).')


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parse_args(argv)
    for name in ('events', 'variables', 'log_file'):
        setattr(options, name, getattr(options, name).resolve())
    # Relative SQLite URLs mean the same file for the demo and the runner: the repository's.
    previous_directory = os.getcwd()
    os.chdir(REPO_ROOT)
    root_level = logging.getLogger().level
    handler = configure_logging(options.log_file, options.debug)
    try:
        return asyncio.run(run_until_signal(options))
    except (DemoError, EventFileError, ConfigurationError) as error:
        print(f'Demo stopped: {error}', file=sys.stderr)
        return 2
    except (DemoFailed, RunnerExited, RunnerNotReady, RunnerDisconnected) as error:
        print(f'Demo failed: {error}', file=sys.stderr)
        print_log_excerpt(options.log_file, problems_only=options.debug)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print('Stopped.')
        return 0 if options.keep_running else 130
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(root_level)
        handler.close()
        os.chdir(previous_directory)


def _log_problems(path: Path, lines: int = 30) -> str:
    """The last WARNING and ERROR lines of the log (the runner and the extension's)."""
    try:
        text = path.read_text(encoding='utf-8', errors='replace')
    except OSError:
        return '(no log)'
    problems = [line for line in text.splitlines() if ' WARNING ' in line or ' ERROR ' in line]
    return '\n'.join(problems[-lines:]) or '(none)'


if __name__ == '__main__':
    sys.exit(main())
