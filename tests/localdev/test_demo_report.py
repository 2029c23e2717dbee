"""The demo's table and what it says below it, from rows made here (no runner)."""
import dataclasses
import re
from datetime import datetime, timedelta, timezone

from connect_mongodb_example.installation_record import InstallationRecord
from connect_mongodb_example.settings import load_settings
from localdev.connect_emulator import Delivery, Event, InstallationChange, ScheduleRun, TaskResult
from localdev.demo_lifecycle import PURGE, RETENTION, Turn
from localdev.demo_report import (
    FOOTNOTE_WIDTH,
    Table,
    exit_code,
    one_line,
    page_line,
    report_lines,
)
from localdev.demo_session import JobRow, Readback
from localdev.demo_summary import job_lines, summary
from localdev.readback import SEEDED, InstallationRow, StoredEvent
from tests.support.records import purchase_record

SQL = 'sql (sqlite:///x)'
MONGODB = 'mongodb (h/db.events via pymongo)'
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
TOPOLOGY = ('mongodb (127.0.0.1:1/connect_events.events via pymongo): No servers found '
            'yet, Timeout: 5.0s, Topology Description: <TopologyDescription id: 1, '
            "servers: [<ServerDescription ('127.0.0.1', 1) server_type: Unknown, "
            "error=AutoReconnect('127.0.0.1:1: [Errno 111] Connection refused')>]"
            + 'x' * 500 + '>')


def result(task_id, outcome, message=None):
    return TaskResult(task_id=task_id, object_id='-', installation_id=None, result=outcome,
                      message=message)


def stored(event, count=1, backends=(SQL,), **options):
    record = purchase_record(event.request, installation=event.installation)
    results = [result(f'TQ-{n}', 'success') for n in range(event.deliveries)]
    return StoredEvent(Delivery(event, results),
                       {name: dataclasses.replace(record, delivery_count=count)
                        for name in backends}, **options)


def columns(line):
    """Where each column starts: after two spaces, or at the start."""
    return [match.start() for match in re.finditer(r'(?:^|(?<=  ))\S', line)]


def test_the_report_shows_each_event_its_stored_count_and_outcome(
    purchase_request, installation,
):
    stored_event = Event(purchase_request('PR-1', 'approved'), installation, deliveries=2)
    skipped = Event(purchase_request('PR-2', 'draft'))
    rows = [
        stored(stored_event, count=2),
        StoredEvent(
            Delivery(skipped, [result('TQ-3', 'skip', 'The request status does not match')]),
            {}, expected='skip', expected_reason="status 'draft' is not subscribed",
        ),
    ]

    lines = report_lines(rows)

    assert lines[0].split() == ['event', 'status', 'installation', 'account', 'stored',
                                'outcome', 'reason']
    assert lines[2].split() == ['PR-1', 'approved', installation['id'],
                                installation['owner']['id'], '2x', 'done,', 'done']
    assert lines[3].split(maxsplit=6) == [
        'PR-2', 'draft', '-', '-', '-', 'skip', "as expected: status 'draft' is not subscribed",
    ]
    assert len(lines) == 4


def test_rows_printed_later_line_up_with_the_table(purchase_request, installation):
    """--keep-running prints the rows of each event file dropped in under the first table."""
    table = Table()
    first = report_lines([stored(Event(purchase_request('PR-5852-1608-1176-001', 'inquiring'),
                                       installation))], table)
    later = report_lines([stored(Event(purchase_request('PR-1', 'pending')))], table,
                         header=False)
    change = InstallationRow(
        Delivery(InstallationChange(installation, 'uninstalled'), [result('TQ-9', 'success')]),
        {SQL: InstallationRecord(installation['id'], 'uninstalled', NOW)})
    later_change = report_lines([change], table, header=False)

    assert columns(later[0]) == columns(first[0])[:len(columns(later[0]))]
    assert columns(later_change[0]) == columns(first[0])[:len(columns(later_change[0]))]


def test_an_event_its_input_says_to_skip_or_fail_is_no_failure(purchase_request):
    ok = stored(Event(purchase_request('PR-1', 'pending')))
    skipped = StoredEvent(Delivery(Event(purchase_request('PR-2', 'draft')),
                                   [result('TQ-2', 'skip')]), {}, expected='skip')
    refused = StoredEvent(Delivery(Event({'id': 'PR-3', 'status': 'pending'}),
                                   [result('TQ-3', 'fail', 'no updated time')]),
                          {}, expected='fail')
    lost = StoredEvent(Delivery(Event(purchase_request('PR-4', 'pending')),
                                [result('TQ-4', 'reschedule')]), {SQL: None})

    assert exit_code([ok, skipped, refused]) == 0
    assert exit_code([ok, skipped, refused, lost]) == 1
    assert summary(readback([ok, skipped, refused, lost])).startswith(
        f'1 of 2 events stored in {SQL}; 1 skipped as its input calls for; '
        '1 failed as its input calls for.',
    )


def test_with_two_backends_the_summary_says_what_each_stored(purchase_request):
    """SQL stored the event, MongoDB was unreachable: not '0 of 1 stored in sql, mongodb'."""
    record = purchase_record(purchase_request('PR-1', 'pending'))
    row = StoredEvent(Delivery(Event(purchase_request('PR-1', 'pending')),
                               [result('TQ-1', 'success')]),
                      {SQL: record, MONGODB: None})

    lines = report_lines([row])

    assert 'stored (sql / mongodb)' in lines[0]
    assert '1x / NOT STORED' in lines[2]
    assert summary(readback([row])).startswith(
        f'1 of 1 events stored in {SQL}, 0 of 1 in {MONGODB}.')


def test_a_long_error_is_cut_short_in_the_table_and_shown_once_on_one_line(purchase_request):
    rows = [
        StoredEvent(Delivery(Event(purchase_request(f'PR-{n}', 'pending')),
                             [result(f'TQ-{n}', 'retry',
                                     f'Traceback (most recent call last):\n  ...\n{TOPOLOGY}')]),
                    {'mongodb': None}, problem=f'cannot read back: {TOPOLOGY}')
        for n in range(8)
    ]

    lines = report_lines(rows, header=False)

    assert len(lines) == 8 + 2  # one line per event, then the error and its rows
    for line in lines[:8]:
        assert line.endswith('retry: No servers found yet, Timeout: 5.0s [1]')
    # PyMongo's description of every server it tried says no more than what precedes it.
    assert lines[8] == ('  [1] retry: mongodb (127.0.0.1:1/connect_events.events via '
                        'pymongo): No servers found yet, Timeout: 5.0s')
    assert lines[9] == '      rows: all'


def test_an_error_below_the_table_takes_one_line_at_most():
    long = 'sql (postgresql://h/db): ' + 'y' * 1000 + '\nsecond line'

    assert one_line(long) == long[:FOOTNOTE_WIDTH - 3] + '...'
    assert one_line(f'{TOPOLOGY}, then more') == (
        'mongodb (127.0.0.1:1/connect_events.events via pymongo): No servers found yet, '
        'Timeout: 5.0s, then more')


def test_a_missing_postgresql_database_is_named_with_the_command_that_creates_it(
    purchase_request,
):
    error = ('cannot read back: sql (postgresql://postgres@127.0.0.1:5432/nosuch): connection '
             'to server at "127.0.0.1", port 5432 failed: FATAL:  database "nosuch" does not '
             'exist')
    rows = [StoredEvent(Delivery(Event(purchase_request(f'PR-{n}', 'pending')),
                                 [result(f'TQ-{n}', 'reschedule')]), {'sql': None}, problem=error)
            for n in range(2)]

    lines = report_lines(rows, header=False)

    assert re.split(r'\s{2,}', lines[0])[-3:] == [
        'NOT STORED', 'reschedule', 'database "nosuch" does not exist [1]']
    assert lines[2:5] == [
        f'  [1] {error}',
        '      create it first: createdb -h 127.0.0.1 -U postgres nosuch',
        '      rows: all',
    ]


def test_the_reason_says_why_a_task_did_not_succeed(purchase_request):
    event = Event(purchase_request('PR-3', 'pending'))
    rescheduled = StoredEvent(Delivery(event, [
        TaskResult('TQ-4', 'PR-3', None, 'reschedule', countdown=30),
    ]), {'sql': None}, problem='cannot read back: sql: no answer within 10s')
    retried = StoredEvent(Delivery(event, [
        TaskResult('TQ-5', 'PR-3', None, 'retry',
                   message='Traceback (most recent call last):\n  ...\nStorageRejected: denied'),
    ]), {'sql': None})

    lines = report_lines([rescheduled, retried], header=False)

    assert re.split(r'\s{2,}', lines[0])[-3:] == [
        'NOT STORED', 'reschedule', 'cannot read back: sql: no answer within 10s']
    assert re.split(r'\s{2,}', lines[1])[-3:] == [
        'NOT STORED', 'retry', 'retry: StorageRejected: denied']
    assert lines[2] == ('  reschedule: Connect would deliver the event again after the '
                        'countdown; the emulation does not.')


# -- the lifecycle ----------------------------------------------------------------------------


def lifecycle_rows(purchase_request, installation, *, left=False, not_due=False):
    """History seeded and deleted for its age, an installation's event purged after its
    uninstall, another kept; the uninstall, and the job."""
    other = {'id': 'EIN-2222', 'owner': {'id': 'PA-222', 'name': 'Two'}}
    history = Event(purchase_request('PR-OLD', 'approved'), other)
    purged = Event(purchase_request('PR-1', 'approved'), installation)
    kept = Event(purchase_request('PR-2', 'pending'), other)
    records = {event.request_id: purchase_record(event.request, installation=event.installation)
               for event in (history, purged, kept)}
    records['PR-OLD'] = dataclasses.replace(records['PR-OLD'],
                                            received_at=NOW - timedelta(days=400))
    before = {SQL: {record.key: record for record in records.values()}}
    after = {SQL: {**before[SQL], records['PR-OLD'].key: None}}
    if not left:
        after[SQL][records['PR-1'].key] = None
    if not_due:
        after[SQL][records['PR-2'].key] = None
    schedule = {'id': 'EFS-1', 'name': 'Data lifecycle', 'method': 'run_data_lifecycle',
                'parameter': {}}
    job = Delivery(ScheduleRun(), [result('TQ-9', 'success', 'deleted 2 events')], schedule)
    due = {records['PR-OLD'].key: RETENTION, records['PR-1'].key: PURGE}
    turn = Turn(job, 'the Data lifecycle job', before, after, may=due, must=due)
    deletions = turn.deletions()

    def row(event, expected='done'):
        key = records[event.request_id].key
        kept_record = after[SQL][key]
        return StoredEvent(Delivery(event, [] if expected == SEEDED else
                                    [result('TQ-1', 'success')]),
                           {SQL: kept_record}, expected=expected,
                           deletions={SQL: deletions[(SQL, key)]} if (SQL, key) in deletions
                           else {})

    uninstall = InstallationRow(
        Delivery(InstallationChange(installation, 'uninstalled'), [result('TQ-8', 'success')]),
        {SQL: InstallationRecord(installation['id'], 'uninstalled', NOW, purge_after=NOW)})
    return [row(history, SEEDED), row(purged), row(kept), uninstall, JobRow(job, turn)]


def readback(rows, counts=None):
    settings = load_settings({'DATABASE_URL': 'sqlite:///x', 'ON_UNINSTALL': 'purge',
                              'PURGE_GRACE_DAYS': '0', 'EVENTS_RETENTION_DAYS': '365'})
    return Readback(rows, settings, counts or {})


def test_the_table_shows_the_uninstall_the_job_and_what_it_deleted(
    purchase_request, installation,
):
    rows = lifecycle_rows(purchase_request, installation)

    lines = report_lines(rows)

    assert [line.split('  ')[0] for line in lines[2:]] == [
        'PR-OLD', 'PR-1', 'PR-2', installation['id'], 'Data lifecycle']
    history, purged, kept, uninstall, job = (re.split(r'\s{2,}', line) for line in lines[2:])
    assert history[4:] == ['deleted', 'seeded',
                           'past retention, deleted by the Data lifecycle job']
    assert purged[4:] == ['deleted', 'done', 'purged by the Data lifecycle job']
    assert kept[4:] == ['1x', 'done']
    assert uninstall[1:] == ['uninstalled', installation['id'], installation['owner']['id'],
                             'uninstalled', 'done', 'purge due 2026-12-01 12:00:00 UTC']
    assert job[1:] == ['job', 'all', '-', '-', 'done', 'deleted 2: 1 purged, 1 past retention']
    assert exit_code(rows) == 0


def test_below_the_table_the_job_says_what_it_deleted_and_the_counts_what_is_left(
    purchase_request, installation,
):
    rows = lifecycle_rows(purchase_request, installation)

    text = summary(readback(rows, {installation['id']: {SQL: 0}, 'EIN-2222': {SQL: 1}}))

    assert text.splitlines()[:7] == [
        f'2 of 2 events stored in {SQL}.',
        "seeded: 1 history events (the events folder's history/) stored straight into the "
        'storage before the runner started, as received 400 days ago.',
        'Data lifecycle job (run_data_lifecycle, every installation): done.',
        '  Its output: deleted 2 events',
        '  Read back: it deleted 2 events, all due:',
        '    1 received over 365 days ago (EVENTS_RETENTION_DAYS=365)',
        f'    1 of {installation["id"]}, uninstalled (ON_UNINSTALL=purge, PURGE_GRACE_DAYS=0)',
    ]
    assert (f'Events stored now, per installation: {installation["id"]} 0 (uninstalled), '
            f'EIN-2222 1.') in text


def test_a_job_that_leaves_due_events_or_deletes_others_fails_the_demo(
    purchase_request, installation,
):
    left = lifecycle_rows(purchase_request, installation, left=True)
    not_due = lifecycle_rows(purchase_request, installation, not_due=True)

    assert exit_code(left) == 1
    assert report_lines(left)[-1].endswith('1 due events left in sql')
    assert exit_code(not_due) == 1
    assert re.split(r'\s{2,}', report_lines(not_due)[4])[4:] == [
        'deleted', 'done', 'deleted by the Data lifecycle job, though not due']
    assert 'NOT all due' in '\n'.join(job_lines(not_due[-1], readback(not_due).settings))


def test_a_status_change_or_job_connect_would_not_send_is_no_failure(installation):
    change = InstallationRow(
        Delivery(InstallationChange(installation, 'uninstalled'), [],
                 not_sent='not sent: the extension does not subscribe to '
                          'installation_status_change'),
        {}, expected='not sent', expected_reason='not sent: ...')
    job = JobRow(Delivery(ScheduleRun(), [], not_sent='not run: no schedulable method'), None)
    kept_nothing = InstallationRow(
        Delivery(InstallationChange(installation, 'installed'), [result('TQ-1', 'success')]),
        {SQL: None})

    assert exit_code([change, job]) == 0
    assert report_lines([change, job])[2].split('  ')[0] == installation['id']
    assert exit_code([kept_nothing]) == 1
    assert page_line(job) == 'schedule job: - (not run: no schedulable method)'

