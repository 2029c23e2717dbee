"""What the demo prints below its table: what was stored where, the seeded history, what
each job answered and deleted (read back), and how many events each installation keeps."""
from typing import Dict, List

from connect_mongodb_example.settings import Settings
from localdev.demo_history import HISTORY_AGE_DAYS, HISTORY_FOLDER
from localdev.demo_lifecycle import PURGE, RETENTION, Turn
from localdev.demo_report import backend_name, job_name, one_line, outcomes
from localdev.demo_session import JobRow, Readback, Row
from localdev.readback import NOT_SENT, SEEDED, InstallationRow, StoredEvent

#: Lines of a job's output shown below the table, at most.
OUTPUT_LINES = 12


def summary(readback: Readback) -> str:
    """What was stored where, what the jobs deleted, and what each installation keeps."""
    rows = readback.rows
    lines = [_stored_summary(rows)]
    seeded = [row for row in rows if isinstance(row, StoredEvent) and row.expected == SEEDED]
    if seeded:
        lines.append(f"seeded: {len(seeded)} history events (the events folder's "
                     f'{HISTORY_FOLDER}/) stored straight into the storage before the runner '
                     f'started, as received {HISTORY_AGE_DAYS} days ago.')
    for row in rows:
        if isinstance(row, JobRow) and not row.delivery.not_sent:
            lines.extend(job_lines(row, readback.settings))
    counts = remaining_counts(readback)
    if counts:
        lines.append(f'Events stored now, per installation: {counts}.')
    lines.append('"stored" is the delivery count the storage keeps for the event (for an '
                 'installation, the status it keeps);\n"outcome" the task result of each '
                 'delivery, in the words of README\'s outcome table ("done" is what the\n'
                 'runner reports as "success").')
    return '\n'.join(lines)


def _stored_summary(rows: List[Row]) -> str:
    """'8 of 8 events stored in sql (...)', per backend, then what else happened."""
    events = [row for row in rows if isinstance(row, StoredEvent)]
    to_store = [row for row in events if row.expected == 'done']
    backends = list(dict.fromkeys(name for row in to_store for name in row.records))
    counts = [f'{sum(row.kept_in(name) for row in to_store)} of {len(to_store)}'
              for name in backends] or [f'0 of {len(to_store)}']
    text = f'{counts[0]} events stored in {backends[0] if backends else "-"}'
    text += ''.join(f', {count} in {name}' for count, name in zip(counts[1:], backends[1:]))
    for outcome, verb in (('skip', 'skipped'), ('fail', 'failed')):
        number = sum(row.expected == outcome for row in events)
        if number:
            text += f'; {number} {verb} as {"its" if number == 1 else "their"} input calls for'
    not_sent = sum(row.expected == NOT_SENT for row in rows if not isinstance(row, JobRow))
    if not_sent:
        text += f'; {not_sent} not sent, as Connect would not'
    return f'{text}.'


def job_lines(row: JobRow, settings: Settings) -> List[str]:
    """What a job run did: its result and output, and what it deleted, read back."""
    schedule = row.delivery.served or {}
    where = row.delivery.event.installation_id or 'every installation'
    result = outcomes(row)
    lines = [f'{job_name(row)} job ({schedule.get("method")}, {where}): {result}.']
    output = [line for result in row.delivery.results
              for line in (result.message or '').strip().splitlines() if line.strip()]
    for number, line in enumerate(output[:OUTPUT_LINES]):
        lines.append(f'  {"Its output: " if number == 0 else "    "}{one_line(line)}')
    if len(output) > OUTPUT_LINES:
        lines.append(f'    ({len(output) - OUTPUT_LINES} more lines of output)')
    turn = row.turn
    if turn is None:
        return lines
    for name in turn.after:
        where = f' from {backend_name(name)}' if len(turn.after) > 1 else ''
        if name in turn.problems:
            lines.append(f'  Read back{where}: {one_line(turn.problems[name])}')
            continue
        lines.extend(_deleted_lines(turn, name, settings, where))
        left = turn.left(name)
        if left:
            lines.append(f'    LEFT {len(left)} events due for deletion: '
                         f'{", ".join(record.key for record in left)}')
    return lines


def _deleted_lines(turn: Turn, name: str, settings: Settings, where: str) -> List[str]:
    """'Read back: it deleted 6 events, all due:' then a line per reason they were due."""
    deleted = turn.deleted(name)
    if not deleted:
        return [f"  Read back{where}: it deleted none of the demo's events."]
    groups: Dict[str, int] = {}
    for record in deleted:
        why = turn.may.get(record.key)
        if why == PURGE:
            group = (f'of {record.installation_id}, uninstalled (ON_UNINSTALL=purge, '
                     f'PURGE_GRACE_DAYS={settings.purge_grace_days})')
        elif why == RETENTION:
            group = (f'received over {settings.retention_days} days ago '
                     f'(EVENTS_RETENTION_DAYS={settings.retention_days})')
        else:
            group = 'NOT due by the settings'
        groups[group] = groups.get(group, 0) + 1
    due = 'all due' if all(record.key in turn.may for record in deleted) else 'NOT all due'
    return [f'  Read back{where}: it deleted {len(deleted)} events, {due}:',
            *(f'    {count} {group}' for group, count in groups.items())]


def remaining_counts(readback: Readback) -> str:
    """'EIN-1 4, EIN-2 0 (uninstalled), no installation 1' (several backends: '0 / 0')."""
    statuses = {row.delivery.event.installation_id: row.delivery.event.status
                   for row in readback.rows if isinstance(row, InstallationRow)}
    parts = []
    for installation_id, by_store in readback.counts.items():
        counts = ['?' if count is None else str(count) for count in by_store.values()]
        status = statuses.get(installation_id)
        parts.append(f'{installation_id} {" / ".join(counts)}'
                     + (' (uninstalled)' if status == 'uninstalled' else ''))
    unattached = [row for row in readback.rows if isinstance(row, StoredEvent)
                  and row.records and row.delivery.event.installation_id is None]
    if unattached and readback.full:
        backends = list(unattached[0].records)
        counts = [str(sum(row.records.get(name) is not None for row in unattached))
                  for name in backends]
        parts.append(f'no installation {" / ".join(counts)}')
    return ', '.join(parts)
