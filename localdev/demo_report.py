"""The demo's table: one row per event (the seeded history first), installation status
change and job run, what each backend keeps of it, the task outcome and, in one short line,
why when it is not simply stored; below it, each long error once. (What follows it is in
demo_summary.py.)
"""
import re
from typing import Iterable, List, Optional, Sequence

from localdev.demo_history import HISTORY_AGE_DAYS
from localdev.demo_lifecycle import PURGE, RETENTION, Turn
from localdev.demo_session import JobRow, Row
from localdev.readback import NOT_SENT, SEEDED, Deletion, InstallationRow, StoredEvent

#: README's outcome table calls a task result by the BackgroundResponse that makes it; the
#: runner reports `done()` as "success". The table uses README's words.
OUTCOME_NAMES = {'success': 'done'}
REASON_WIDTH = 60
#: The longest line an error takes below the table.
FOOTNOTE_WIDTH = 240
COLUMNS = ('event', 'status', 'installation', 'account', 'stored', 'outcome', 'reason')
#: Widths the columns get at least, so that rows printed later (events delivered while
#: --keep-running) still line up when they are a little wider than the first ones.
MIN_WIDTHS = (21, 11, 18, 10, 11, 10, 0)
#: PyMongo describes every server it tried in its errors: hundreds of characters that say
#: no more than the error before them.
TOPOLOGY = ', Topology Description: <'


class Table:
    """Column widths fixed by the first rows printed, so that rows printed later line up."""

    def __init__(self) -> None:
        self.widths: Optional[List[int]] = None

    def lines(self, titles: Sequence[str], rows: List[List[str]], header: bool) -> List[str]:
        if self.widths is None:
            self.widths = [max([minimum, len(title)] + [len(cells[i]) for cells in rows])
                           for i, (title, minimum) in enumerate(zip(titles, MIN_WIDTHS))]
        lines = []
        if header:
            lines.append(self._line(titles))
            lines.append('  '.join('-' * width for width in self.widths))
        lines.extend(self._line(cells) for cells in rows)
        return lines

    def _line(self, cells: Sequence[str]) -> str:
        return '  '.join(cell.ljust(width) for cell, width in zip(cells, self.widths)).rstrip()


def report_lines(rows: List[Row], table: Optional[Table] = None, header: bool = True) -> List[str]:
    """The table, one short reason per row; below it, each whole error once."""
    table = table or Table()
    errors: List[str] = []  # numbered by position: the table refers to them as [n]
    cells = [_cells(row, errors) for row in rows]
    titles = (*COLUMNS[:4], _stored_title(rows), *COLUMNS[5:])
    lines = table.lines(titles, cells, header)
    for number, error in enumerate(errors, 1):
        subjects = [_subject(row) for row in rows if error in _reasons(row)]
        lines.append(f'  [{number}] {one_line(error)}')
        lines.extend(_hints(error))
        shown = 'all' if len(subjects) == len(rows) > 1 else ', '.join(subjects)
        lines.append(f'      rows: {shown}')
    if any(result.result == 'reschedule' for row in rows for result in row.delivery.results):
        lines.append('  reschedule: Connect would deliver the event again after the countdown; '
                     'the emulation does not.')
    return lines


def exit_code(rows: Iterable[Row]) -> int:
    """0 when every row got the outcome its input calls for (a draft request skipped is
    right), 1 when something that should have happened did not: an event not stored (or
    deleted when not due), a status change not kept, a job that failed or left due events."""
    return 1 if any(_failed(row) for row in rows) else 0


def _failed(row: Row) -> bool:
    return row.failed if isinstance(row, JobRow) else row.missing


def _subject(row: Row) -> str:
    item = row.delivery.event
    if isinstance(row, JobRow):
        return job_name(row)
    return f'{item.subject} ({getattr(item, "status", "")})'


# -- cells ------------------------------------------------------------------------------------


def _stored_title(rows: List[Row]) -> str:
    """'stored', or with several backends the order of the counts: 'stored (sql / mongodb)'."""
    names = next((list(row.records) for row in rows
                  if not isinstance(row, JobRow) and row.records), [])
    if len(names) < 2:
        return 'stored'
    return f'stored ({" / ".join(backend_name(name) for name in names)})'


def backend_name(description: str) -> str:
    return description.split(' ', 1)[0]


def outcomes(row: Row) -> str:
    return ', '.join(OUTCOME_NAMES.get(result.result, result.result)
                     for result in row.delivery.results) or '-'


def _cells(row: Row, errors: List[str]) -> List[str]:
    reason = _short_reason(_reasons(row), errors)
    if isinstance(row, JobRow):
        item = row.delivery.event
        return [job_name(row), 'job', item.installation_id or 'all', '-', '-',
                outcomes(row), reason]
    if isinstance(row, InstallationRow):
        change = row.delivery.event
        stored = [('NOT STORED' if record is None else record.status)
                  for record in row.records.values()] or ['-']
        return [change.installation_id, change.status, change.installation_id,
                change.account_id or '-', ' / '.join(stored), outcomes(row), reason]
    event = row.delivery.event
    if row.expected not in ('done', SEEDED) and not row.records:
        counts = ['-']
    else:
        counts = [_count(row, name, record) for name, record in row.records.items()]
    return [
        event.request_id, event.status, event.installation_id or '-', event.account_id or '-',
        ' / '.join(counts) or 'NOT STORED',
        'seeded' if row.expected == SEEDED else outcomes(row), reason,
    ]


def _count(row: StoredEvent, name: str, record) -> str:
    if record is not None:
        return f'{record.delivery_count}x'
    return 'deleted' if name in row.deletions else 'NOT STORED'


def job_name(row: JobRow) -> str:
    return (row.delivery.served or {}).get('name') or row.delivery.event.subject


# -- reasons ----------------------------------------------------------------------------------


def _reasons(row: Row) -> List[str]:
    """Why the row got its outcome, the most telling first. None when it simply did."""
    if isinstance(row, JobRow):
        return _job_reasons(row)
    reasons = []
    if isinstance(row, StoredEvent):
        reasons.extend(dict.fromkeys(_deletion_reason(deletion)
                                     for deletion in row.deletions.values()))
    outcomes = {result.result for result in row.delivery.results}
    if row.expected == NOT_SENT:
        reasons.append(row.expected_reason)
    elif row.expected == SEEDED and not reasons:
        reasons.append(f'history, received {HISTORY_AGE_DAYS} days ago')
    elif row.expected not in ('done', SEEDED) and outcomes <= {row.expected}:
        reasons.append(f'as expected: {row.expected_reason}')
    reasons.extend(_result_reasons(row, row.expected))
    if row.problem:
        reasons.append(row.problem)
    if isinstance(row, InstallationRow):
        reasons.extend(_installation_notes(row))
    if row.missing and not reasons:
        reasons.append('not found in storage after the runner answered')
    return list(dict.fromkeys(reasons))


def _result_reasons(row: Row, expected: str) -> List[str]:
    reasons = []
    for result in row.delivery.results:
        if result.result in ('success', 'reschedule') or result.result == expected:
            continue
        # For a retry the message is a traceback: its last line names the error.
        lines = (result.message or '').strip().splitlines()
        reasons.append(f'{result.result}: {lines[-1] if lines else "(no message)"}')
    return reasons


def _deletion_reason(deletion: Deletion) -> str:
    if deletion.why == PURGE:
        return f'purged by {deletion.label}'
    if deletion.why == RETENTION:
        return f'past retention, deleted by {deletion.label}'
    return f'deleted by {deletion.label}, though not due'


def _installation_notes(row: InstallationRow) -> List[str]:
    notes = []
    for record in row.records.values():
        if record is not None and record.purged_at is not None:
            notes.append(f'purged {_moment(record.purged_at)}')
        elif record is not None and record.purge_after is not None:
            notes.append(f'purge due {_moment(record.purge_after)}')
    return notes


def _job_reasons(row: JobRow) -> List[str]:
    if row.delivery.not_sent:
        return [row.delivery.not_sent]
    reasons = _result_reasons(row, 'success')
    turn = row.turn
    if turn is None:
        return reasons
    reasons.extend(turn.problems.values())
    for name in turn.after:
        left = turn.left(name)
        if left:
            reasons.append(f'{len(left)} due events left in {backend_name(name)}')
    deleted = {name: turn.deleted(name) for name in turn.after if name not in turn.problems}
    if deleted:
        reasons.append(_deleted_counts(turn, next(iter(deleted))))
    return reasons


def _deleted_counts(turn: Turn, name: str) -> str:
    """'deleted 6: 3 purged, 3 past retention' (of the events the demo knows)."""
    deleted = turn.deleted(name)
    if not deleted:
        return 'deleted nothing'
    kinds = [turn.may.get(record.key) for record in deleted]
    parts = [f'{kinds.count(PURGE)} purged' if PURGE in kinds else '',
             f'{kinds.count(RETENTION)} past retention' if RETENTION in kinds else '',
             f'{kinds.count(None)} not due' if None in kinds else '']
    return f'deleted {len(deleted)}: {", ".join(part for part in parts if part)}'


def _short_reason(reasons: List[str], errors: List[str]) -> str:
    if not reasons:
        return ''
    reason = reasons[0]
    short = _shorten(reason)
    if short == reason:
        return reason
    if reason not in errors:
        errors.append(reason)
    return f'{short} [{errors.index(reason) + 1}]'


def without_topology(text: str) -> str:
    """`text` without PyMongo's description of the servers it tried (`, Topology
    Description: <...>`, angle brackets nested)."""
    start = text.find(TOPOLOGY)
    if start < 0:
        return text
    depth, end = 0, len(text)
    for index in range(start + len(TOPOLOGY) - 1, len(text)):
        depth += {'<': 1, '>': -1}.get(text[index], 0)
        if depth == 0:
            end = index + 1
            break
    return without_topology(text[:start] + text[end:])


def one_line(error: str) -> str:
    """An error as the line below the table shows it: its first line, without PyMongo's
    topology description, at most FOOTNOTE_WIDTH characters."""
    lines = without_topology(error).strip().splitlines()
    text = lines[0] if lines else ''
    return text if len(text) <= FOOTNOTE_WIDTH else f'{text[:FOOTNOTE_WIDTH - 3].rstrip()}...'


def _shorten(reason: str) -> str:
    """The telling part of an error: without the backend's description (the header and the
    whole error below name it), the server's own verdict when a driver wraps one, cut to
    REASON_WIDTH."""
    text = one_line(reason)
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


def _moment(moment) -> str:
    return moment.strftime('%Y-%m-%d %H:%M:%S UTC')


def page_line(row: Row) -> str:
    """One row as a sentence, for the local portal's page: 'EIN-... uninstalled: done'."""
    cells = _cells(row, [])
    reasons = _reasons(row)
    text = f'{cells[0]} {cells[1]}: {cells[5]}'
    return f'{text} ({one_line(reasons[0])})' if reasons else text
