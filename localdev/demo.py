"""`make demo`: the real extension runner processes sample events offline, and they are stored.

Starts the Connect emulation and `cextrun`, delivers every event file of demo/events/,
waits for every result, stops the runner, then reads back what the extension stored
(through its own storage interface) and prints it. Exits 1 if an event was not stored.

    python -m localdev.demo --help
"""
import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set
from urllib.parse import urlsplit

from connect_mongodb_example.errors import ConfigurationError
from connect_mongodb_example.settings import load_settings, variable_declarations
from localdev.connect_emulator import (
    ConnectEmulator,
    Delivery,
    Event,
    EventFileError,
    load_events,
)
from localdev.connect_emulator.events import load_event
from localdev.connect_emulator.portal import LocalPortal
from localdev.connect_emulator.protocol import variable_values
from localdev.connect_emulator.websocket import RunnerDisconnected
from localdev.offline import REPO_ROOT, RunnerNotReady, offline_runner
from localdev.readback import StoredEvent, read_back
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
        '--keep-running', action='store_true',
        help='after the table, keep the runner up and deliver event files added to (or '
             'changed in) the events folder, until Ctrl+C',
    )
    parser.add_argument(
        '--keep-data', action='store_true',
        help='do not clear the demo database under .demo/ first (other databases are '
             'never cleared)',
    )
    parser.add_argument(
        '--debug', action='store_true',
        help='runner and extension at DEBUG; the log then holds every variable value, secure '
             'ones (passwords, keys) included, so a failure prints only its warning and error '
             'lines',
    )
    return parser.parse_args(argv)


def load_variables(path: Path, assignments: Sequence[str] = ()) -> Dict[str, str]:
    """The variables file (a JSON object of strings) plus NAME=VALUE assignments."""
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
    for assignment in assignments:
        name, equals, value = assignment.partition('=')
        if not equals or not name.strip():
            raise DemoError(f'--set {assignment!r}: expected NAME=VALUE')
        variables[name.strip()] = value
    return variables


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
        return await run(options)
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def run(options: argparse.Namespace) -> int:
    events = load_events(options.events)
    variables = load_variables(options.variables, options.assignments)
    check_variables(variables)
    if not options.keep_data:
        clear_scratch_database(variables)
    deadline = time.monotonic() + options.timeout
    log_path = options.log_file
    print(f'Starting the Connect emulation and the extension runner (log: {log_path}) ...')
    started = time.monotonic()
    async with offline_runner(
        variables=variables, log_path=log_path, ready_timeout=options.timeout,
        debug=options.debug,
    ) as emulator, LocalPortal(emulator) as portal:
        deliveries = sum(event.deliveries for event in events)
        print(f'Runner ready after {time.monotonic() - started:.1f}s; delivering '
              f'{len(events)} events ({deliveries} deliveries) from {options.events} ...')
        print(f'Events pages: {portal.url} (served while the demo runs; --keep-running '
              f'keeps them up)')
        delivered = await _deliver_before(emulator, events, deadline)
        if options.keep_running:
            print_report(await read_back(delivered, emulator.effective_variables()))
            await print_portal(emulator, portal)
            await watch_events(emulator, options.events)
            return 0
    # The runner is stopped: what is read now has outlived it.
    rows = await read_back(delivered, emulator.effective_variables())
    print_report(rows)
    _warn_unknown_calls(emulator)
    if all(row.stored for row in rows):
        return 0
    print_log_excerpt(log_path, problems_only=True)
    return 1


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
    emulator: ConnectEmulator, events: List[Event], deadline: float,
) -> List[Delivery]:
    remaining = max(deadline - time.monotonic(), 0.1)
    try:
        return await asyncio.wait_for(emulator.deliver_all(events), remaining)
    except asyncio.TimeoutError:
        answered = {id(delivery.event) for delivery in emulator.deliveries}
        missing = [event for event in events if id(event) not in answered]
        raise DemoFailed(
            f'{len(missing)} of {len(events)} events got no result before the timeout: '
            + ', '.join(f'{event.request_id} ({event.status})' for event in missing)
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


async def watch_events(emulator: ConnectEmulator, directory: Path) -> None:
    """Deliver event files as they are added or changed, until interrupted."""
    print(f'\nWatching {directory} for new or changed event files; Ctrl+C to stop.')
    seen = _snapshot(directory)
    while True:
        await asyncio.sleep(WATCH_INTERVAL_SECONDS)
        current = _snapshot(directory)
        for path in sorted(set(current.items()) - set(seen.items())):
            await _deliver_file(emulator, Path(path[0]))
        seen = current


def _snapshot(directory: Path) -> Dict[str, int]:
    snapshot = {}
    for path in directory.glob('*.json'):
        with contextlib.suppress(FileNotFoundError):  # removed since it was listed
            snapshot[str(path)] = path.stat().st_mtime_ns
    return snapshot


async def _deliver_file(emulator: ConnectEmulator, path: Path) -> None:
    try:
        delivery = await emulator.deliver(load_event(path))
    except EventFileError as error:
        print(f'  skipped: {error}')
        return
    rows = await read_back([delivery], emulator.effective_variables())
    print_report(rows, header=False)


# -- the report -------------------------------------------------------------------------------

COLUMNS = ('request', 'status', 'installation', 'account', 'stored', 'task results')


def report_lines(rows: List[StoredEvent], header: bool = True) -> List[str]:
    table = [_cells(row) for row in rows]
    widths = [max([len(title)] + [len(cells[i]) for cells in table])
              for i, title in enumerate(COLUMNS)]
    lines = []
    if header:
        lines.append('  '.join(
            title.ljust(width) for title, width in zip(COLUMNS, widths)).rstrip())
        lines.append('  '.join('-' * width for width in widths))
    lines.extend('  '.join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()
                 for cells in table)
    for row in rows:
        lines.extend(_notes(row))
    return lines


def _cells(row: StoredEvent) -> List[str]:
    event = row.delivery.event
    counts = [
        'NOT STORED' if record is None else f'{record.delivery_count}x'
        for record in row.records.values()
    ] or ['NOT STORED']
    return [
        event.request_id, event.status, event.installation_id or '-', event.account_id or '-',
        ' / '.join(counts), ', '.join(result.result for result in row.delivery.results),
    ]


def _notes(row: StoredEvent) -> List[str]:
    event = row.delivery.event
    notes = [f'  ! {event.request_id} ({event.status}): {row.problem}'] if row.problem else []
    for result in row.delivery.results:
        if result.result == 'success':
            continue
        if result.result == 'reschedule':
            detail = (f'Connect would deliver it again in {result.countdown}s '
                      f'(the emulation does not)')
        else:
            # For a retry the message is a traceback: its last line names the error.
            lines = (result.message or '').strip().splitlines()
            detail = lines[-1][:200] if lines else '(no message)'
        notes.append(f'  ! {event.request_id} ({event.status}) task {result.task_id} '
                     f'{result.result}: {detail}')
    return notes


def print_report(rows: List[StoredEvent], header: bool = True) -> None:
    if header:
        print()
    print('\n'.join(report_lines(rows, header)))
    if not header:
        return
    stores: Set[str] = {name for row in rows for name in row.records}
    stored = sum(row.stored for row in rows)
    print(f'\n{stored} of {len(rows)} events stored in {", ".join(sorted(stores)) or "-"}; '
          f'"stored" is the delivery count the storage keeps for the event.')


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
