"""`make demo`: the real extension runner processes sample events offline, and they are stored.

Starts the Connect emulation and `cextrun`, delivers every event file of demo/events/,
waits for every result, stops the runner, then reads back what the extension stored
(through its own storage interface) and prints it. Exits 1 if an event that should have been
stored was not (an event its input says to skip or fail is not a failure), 2 on bad input.

    python -m localdev.demo --help
"""
import argparse
import asyncio
import contextlib
import difflib
import json
import logging
import os
import re
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
        debug=options.debug, instances=options.instances,
        api_latency=options.api_latency_ms / 1000,
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
    code = exit_code(rows)
    if code:
        print(f"Not every event that should be stored was; the runner's side is in {log_path}.",
              file=sys.stderr)
    return code


def exit_code(rows: List[StoredEvent]) -> int:
    """0 when every event got the outcome its input calls for (a draft request skipped is
    right), 1 when an event that should have been stored was not."""
    return 1 if any(row.missing for row in rows) else 0


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

#: README's outcome table calls a task result by the BackgroundResponse that makes it; the
#: runner reports `done()` as "success". The table uses README's words.
OUTCOME_NAMES = {'success': 'done'}
REASON_WIDTH = 60
COLUMNS = ('request', 'status', 'installation', 'account', 'stored', 'outcome', 'reason')


def report_lines(rows: List[StoredEvent], header: bool = True) -> List[str]:
    """The table, one short reason per event; below it, each whole error once."""
    errors: List[str] = []  # numbered by position: the table refers to them as [n]
    table = [_cells(row, errors) for row in rows]
    columns = (*COLUMNS[:4], _stored_title(rows), *COLUMNS[5:])
    widths = [max([len(title)] + [len(cells[i]) for cells in table])
              for i, title in enumerate(columns)]
    lines = []
    if header:
        lines.append('  '.join(
            title.ljust(width) for title, width in zip(columns, widths)).rstrip())
        lines.append('  '.join('-' * width for width in widths))
    lines.extend('  '.join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()
                 for cells in table)
    for number, error in enumerate(errors, 1):
        events = [f'{row.delivery.event.request_id} ({row.delivery.event.status})'
                  for row in rows if error in _reasons(row)]
        lines.append(f'  [{number}] {error}')
        lines.extend(_hints(error))
        shown = 'all' if len(events) == len(rows) > 1 else ', '.join(events)
        lines.append(f'      events: {shown}')
    if any(result.result == 'reschedule' for row in rows for result in row.delivery.results):
        lines.append('  reschedule: Connect would deliver the event again after the countdown; '
                     'the emulation does not.')
    return lines



def _stored_title(rows: List[StoredEvent]) -> str:
    """'stored', or with several backends the order of the counts: 'stored (sql / mongodb)'."""
    names = next((list(row.records) for row in rows if row.records), [])
    if len(names) < 2:
        return 'stored'
    return f'stored ({" / ".join(_backend_name(name) for name in names)})'


def _backend_name(description: str) -> str:
    return description.split(' ', 1)[0]


def _cells(row: StoredEvent, errors: List[str]) -> List[str]:
    event = row.delivery.event
    if row.expected != 'done' and not row.records:
        counts = ['-']
    else:
        counts = [
            'NOT STORED' if record is None else f'{record.delivery_count}x'
            for record in row.records.values()
        ] or ['NOT STORED']
    outcomes = ', '.join(OUTCOME_NAMES.get(result.result, result.result)
                         for result in row.delivery.results)
    return [
        event.request_id, event.status, event.installation_id or '-', event.account_id or '-',
        ' / '.join(counts), outcomes, _short_reason(row, errors),
    ]


def _reasons(row: StoredEvent) -> List[str]:
    """Why the event got its outcome, the most telling first: the extension's or the
    runner's message, then what reading it back said. None when it was simply stored."""
    reasons = []
    outcomes = {result.result for result in row.delivery.results}
    if row.expected != 'done' and outcomes <= {row.expected}:
        reasons.append(f'as expected: {row.expected_reason}')
    for result in row.delivery.results:
        if result.result in ('success', 'reschedule') or result.result == row.expected:
            continue
        # For a retry the message is a traceback: its last line names the error.
        lines = (result.message or '').strip().splitlines()
        reasons.append(f'{result.result}: {lines[-1] if lines else "(no message)"}')
    if row.problem:
        reasons.append(row.problem)
    if row.missing and not reasons:
        reasons.append('not found in storage after the runner answered')
    return list(dict.fromkeys(reasons))


def _short_reason(row: StoredEvent, errors: List[str]) -> str:
    reasons = _reasons(row)
    if not reasons:
        return ''
    reason = reasons[0]
    short = _shorten(reason)
    if short == reason:
        return reason
    if reason not in errors:
        errors.append(reason)
    return f'{short} [{errors.index(reason) + 1}]'


def _shorten(reason: str) -> str:
    """The telling part of an error: without the backend's description (the header and the
    whole error below name it), the server's own verdict when a driver wraps one, cut to
    REASON_WIDTH."""
    text = reason.splitlines()[0]
    text = re.sub(r'^((?:\w+: )?(?:cannot read back: )?)\w+ \([^)]*\): ', r'\1', text)
    verdict = re.search(r'\b(?:FATAL|ERROR):\s+(.+)$', text)
    if verdict:
        text = verdict.group(1)
    return text if len(text) <= REASON_WIDTH else f'{text[:REASON_WIDTH - 3].rstrip()}...'


def _hints(error: str) -> List[str]:
    """What to do about an error a new user meets first: a PostgreSQL database not created."""
    missing = re.search(r'postgresql://(?:([^:@/]+)[^@/]*@)?([^:/]+)(?::(\d+))?/\S*?\): .*'
                        r'database "([^"]+)" does not exist', error)
    if not missing:
        return []
    user, host, port, database = missing.groups()
    options = f'-h {host}' + (f' -p {port}' if port and port != '5432' else '') + \
        (f' -U {user}' if user else '')
    return [f'      create it first: createdb {options} {database}']


def print_report(rows: List[StoredEvent], header: bool = True) -> None:
    if header:
        print()
    print('\n'.join(report_lines(rows, header)))
    if not header:
        return
    print(f'\n{summary(rows)}')


def summary(rows: List[StoredEvent]) -> str:
    """How many of the events that should be stored were, where, and what else happened."""
    stores = list(dict.fromkeys(name for row in rows for name in row.records))
    to_store = [row for row in rows if row.expected == 'done']
    stored = sum(row.stored for row in to_store)
    others = {
        outcome: sum(row.expected == outcome for row in rows) for outcome in ('skip', 'fail')
    }
    text = f'{stored} of {len(to_store)} events stored in {", ".join(stores) or "-"}'
    for outcome, verb in (('skip', 'skipped'), ('fail', 'failed')):
        if others[outcome]:
            text += f'; {others[outcome]} {verb} as {"its" if others[outcome] == 1 else "their"} ' \
                    f'input calls for'
    return (f'{text}.\n"stored" is the delivery count the storage keeps for the event; '
            f'"outcome" the task result of each\ndelivery, in the words of README\'s outcome '
            f'table ("done" is what the runner reports as "success").')


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
