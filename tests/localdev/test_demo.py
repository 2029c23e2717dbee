"""The demo's inputs and report, without starting a runner."""
import dataclasses
import json
import logging
from datetime import datetime, timezone

import pytest

from localdev import demo
from localdev.connect_emulator import Delivery, Event, TaskResult
from localdev.readback import StoredEvent
from tests.support.records import purchase_record


def test_variables_come_from_the_file_then_from_set(tmp_path):
    path = tmp_path / 'variables.json'
    path.write_text(json.dumps({'DATABASE_URL': 'sqlite:///a', 'STORAGE_TIMEOUT_SECONDS': 5}))

    variables = demo.load_variables(path, ['DATABASE_URL=postgresql://h/db?x=1', 'NEW='])

    assert variables == {
        'DATABASE_URL': 'postgresql://h/db?x=1', 'STORAGE_TIMEOUT_SECONDS': '5', 'NEW': '',
    }


@pytest.mark.parametrize(('content', 'assignments', 'problem'), [
    ('[]', [], 'must hold a JSON object'),
    ('{"A": ', [], 'not valid JSON'),
    ('{"A": null}', [], 'A must be a string'),
    ('{"A": true}', [], 'A must be a string'),
    ('{}', ['NO_EQUALS'], "--set 'NO_EQUALS': expected NAME=VALUE"),
])
def test_bad_variables_are_refused_with_the_reason(tmp_path, content, assignments, problem):
    path = tmp_path / 'variables.json'
    path.write_text(content)

    with pytest.raises(demo.DemoError, match=problem):
        demo.load_variables(path, assignments)


def test_the_shipped_variables_use_the_demo_scratch_database():
    variables = demo.load_variables(demo.DEFAULT_VARIABLES)

    assert demo.scratch_database(variables) == (demo.DEMO_DIR / 'events.sqlite3').resolve()


@pytest.mark.parametrize('url', [
    'sqlite:///data/events.sqlite3',
    'sqlite:////tmp/events.sqlite3',
    'sqlite:///.demo/../data/events.sqlite3',
    'postgresql://postgres@127.0.0.1:5432/demo',
    '',
])
def test_only_databases_under_the_demo_folder_are_cleared(url):
    assert demo.scratch_database({'DATABASE_URL': url}) is None


def test_clearing_removes_the_scratch_database_files(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, 'REPO_ROOT', tmp_path)
    monkeypatch.setattr(demo, 'DEMO_DIR', tmp_path / '.demo')
    (tmp_path / '.demo').mkdir()
    for suffix in ('', '-wal', '-shm'):
        (tmp_path / '.demo' / f'e.sqlite3{suffix}').write_text('x')
    (tmp_path / 'keep.sqlite3').write_text('x')

    demo.clear_scratch_database({'DATABASE_URL': 'sqlite:///.demo/e.sqlite3'})
    demo.clear_scratch_database({'DATABASE_URL': 'sqlite:///keep.sqlite3'})

    assert sorted(path.name for path in tmp_path.rglob('*.sqlite3*')) == ['keep.sqlite3']


def test_the_report_shows_each_event_its_stored_count_and_outcome(
    purchase_request, installation,
):
    stored_event = Event(purchase_request('PR-1', 'approved'), installation, deliveries=2)
    record = purchase_record(stored_event.request, installation=installation,
                          received_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    skipped = Event(purchase_request('PR-2', 'draft'))
    rows = [
        StoredEvent(
            Delivery(stored_event, [result('TQ-1', 'success'), result('TQ-2', 'success')]),
            {'sql (sqlite:///x)': dataclasses.replace(record, delivery_count=2)},
        ),
        StoredEvent(
            Delivery(skipped, [result('TQ-3', 'skip', 'The request status does not match')]),
            {}, expected='skip', expected_reason="status 'draft' is not subscribed",
        ),
    ]

    lines = demo.report_lines(rows)

    assert lines[0].split() == ['request', 'status', 'installation', 'account', 'stored',
                                'outcome', 'reason']
    assert lines[2].split() == ['PR-1', 'approved', installation['id'],
                                installation['owner']['id'], '2x', 'done,', 'done']
    assert lines[3].split(maxsplit=6) == [
        'PR-2', 'draft', '-', '-', '-', 'skip', "as expected: status 'draft' is not subscribed",
    ]
    assert len(lines) == 4


def test_an_event_its_input_says_to_skip_or_fail_is_no_failure(purchase_request):
    stored = StoredEvent(Delivery(Event(purchase_request('PR-1', 'pending')),
                                  [result('TQ-1', 'success')]),
                         {'sql': purchase_record(purchase_request('PR-1', 'pending'))})
    skipped = StoredEvent(Delivery(Event(purchase_request('PR-2', 'draft')),
                                   [result('TQ-2', 'skip')]), {}, expected='skip')
    refused = StoredEvent(Delivery(Event({'id': 'PR-3', 'status': 'pending'}),
                                   [result('TQ-3', 'fail', 'no updated time')]),
                          {}, expected='fail')
    lost = StoredEvent(Delivery(Event(purchase_request('PR-4', 'pending')),
                                [result('TQ-4', 'reschedule')]), {'sql': None})

    assert demo.exit_code([stored, skipped, refused]) == 0
    assert demo.exit_code([stored, skipped, refused, lost]) == 1
    assert demo.summary([stored, skipped, refused, lost]).startswith(
        '1 of 2 events stored in sql; 1 skipped as its input calls for; '
        '1 failed as its input calls for.',
    )


def test_two_backends_are_named_in_the_order_of_storage_backends(purchase_request):
    record = purchase_record(purchase_request('PR-1', 'pending'))
    row = StoredEvent(Delivery(Event(purchase_request('PR-1', 'pending')),
                               [result('TQ-1', 'success')]),
                      {'sql (sqlite:///x)': record, 'mongodb (h/db.events via pymongo)': None})

    lines = demo.report_lines([row])

    assert 'stored (sql / mongodb)' in lines[0]
    assert '1x / NOT STORED' in lines[2]
    assert demo.summary([row]).startswith(
        '0 of 1 events stored in sql (sqlite:///x), mongodb (h/db.events via pymongo).',
    )


def test_a_long_error_is_cut_short_in_the_table_and_shown_whole_once(purchase_request):
    topology = ('mongodb (127.0.0.1:1/connect_events.events via pymongo): No servers found '
                'yet, Timeout: 5.0s, Topology Description: <TopologyDescription '
                + 'x' * 700 + '>')
    rows = [
        StoredEvent(Delivery(Event(purchase_request(f'PR-{n}', 'pending')),
                             [result(f'TQ-{n}', 'retry',
                                     f'Traceback (most recent call last):\n  ...\n{topology}')]),
                    {'mongodb': None}, problem=f'cannot read back: {topology}')
        for n in range(8)
    ]

    lines = demo.report_lines(rows, header=False)

    assert len(lines) == 8 + 2  # one line per event, then the error and its events
    for line in lines[:8]:
        assert line.endswith('retry: No servers found yet, Timeout: 5.0s, Topology Desc... [1]')
    assert lines[8] == f'  [1] retry: {topology}'
    assert lines[9] == '      events: all'
    assert sum(topology in line for line in lines) == 1


def test_a_missing_postgresql_database_is_named_with_the_command_that_creates_it(
    purchase_request,
):
    error = ('cannot read back: sql (postgresql://postgres@127.0.0.1:5432/nosuch): connection '
             'to server at "127.0.0.1", port 5432 failed: FATAL:  database "nosuch" does not '
             'exist')
    rows = [StoredEvent(Delivery(Event(purchase_request(f'PR-{n}', 'pending')),
                                 [result(f'TQ-{n}', 'reschedule')]), {'sql': None}, problem=error)
            for n in range(2)]

    lines = demo.report_lines(rows, header=False)

    assert lines[0].endswith('NOT STORED  reschedule  database "nosuch" does not exist [1]')
    assert lines[2:5] == [
        f'  [1] {error}',
        '      create it first: createdb -h 127.0.0.1 -U postgres nosuch',
        '      events: all',
    ]


def result(task_id, outcome, message=None):
    return TaskResult(task_id=task_id, object_id='-', installation_id=None, result=outcome,
                      message=message)


def test_bad_event_files_stop_the_demo_before_anything_starts(tmp_path, capsys):
    (tmp_path / 'events').mkdir()
    (tmp_path / 'events' / 'bad.json').write_text('{"request": {"id": "PR-1"}}')

    code = demo.main(['--events', str(tmp_path / 'events'),
                      '--log-file', str(tmp_path / 'runner.log')])

    assert code == 2
    assert "bad.json: the request needs a non-empty string 'status'" in capsys.readouterr().err


def test_the_reason_says_why_a_task_did_not_succeed(purchase_request):
    event = Event(purchase_request('PR-3', 'pending'))
    rescheduled = StoredEvent(Delivery(event, [
        TaskResult('TQ-4', 'PR-3', None, 'reschedule', countdown=30),
    ]), {'sql': None}, problem='cannot read back: sql: no answer within 10s')
    retried = StoredEvent(Delivery(event, [
        TaskResult('TQ-5', 'PR-3', None, 'retry',
                   message='Traceback (most recent call last):\n  ...\nStorageRejected: denied'),
    ]), {'sql': None})

    lines = demo.report_lines([rescheduled, retried], header=False)

    assert lines[0].endswith('NOT STORED  reschedule  cannot read back: sql: no answer within 10s')
    assert lines[1].endswith('NOT STORED  retry       retry: StorageRejected: denied')
    assert lines[2] == ('  reschedule: Connect would deliver the event again after the '
                        'countdown; the emulation does not.')


def test_undeclared_variable_names_are_warned_about_with_the_nearest_one(tmp_path):
    path = tmp_path / 'variables.json'
    path.write_text(json.dumps({'STORAGE_BACKEND': 'sql', 'DB': 'events'}))
    warnings = []

    variables = demo.load_variables(
        path, ['DATABSE_URL=sqlite:///.demo/x.sqlite3', 'DATABASE_URL=sqlite:///y', 'ZZZ=1'],
        warn=warnings.append,
    )

    assert variables['DATABSE_URL'] == 'sqlite:///.demo/x.sqlite3'  # passed on all the same
    assert warnings == [
        f'variables file {path}: STORAGE_BACKEND is not a variable of the extension (did '
        f'you mean STORAGE_BACKENDS?); nothing reads it',
        '--set DATABSE_URL: DATABSE_URL is not a variable of the extension (did you mean '
        'DATABASE_URL?); nothing reads it',
        '--set ZZZ: ZZZ is not a variable of the extension; nothing reads it',
    ]  # DB, the tutorial's name, is read


def test_the_shipped_variables_draw_no_warning():
    warnings = []

    demo.load_variables(demo.DEFAULT_VARIABLES, warn=warnings.append)

    assert warnings == []


def test_variables_the_extension_would_refuse_stop_the_demo_first():
    demo.check_variables({'DATABASE_URL': 'sqlite:///.demo/e.sqlite3'})

    with pytest.raises(demo.DemoError, match='STORAGE_BACKENDS: unknown name'):
        demo.check_variables({'STORAGE_BACKENDS': 'nosuchstore'})
    with pytest.raises(demo.DemoError, match='DATABASE_URL: a SQLite URL needs three slashes'):
        demo.check_variables({'DATABASE_URL': 'sqlite://events.db'})


def test_a_file_removed_while_the_folder_is_read_is_left_out(tmp_path):
    (tmp_path / 'a.json').write_text('{}')

    class Listing:
        """The folder as listed just before gone.json was removed."""

        def glob(self, pattern):
            return [tmp_path / 'a.json', tmp_path / 'gone.json']

    assert list(demo._snapshot(Listing())) == [str(tmp_path / 'a.json')]


@pytest.mark.parametrize('debug', [True, False])
def test_a_failure_shows_the_log_but_never_the_debug_lines_with_secrets(
    monkeypatch, tmp_path, capsys, debug,
):
    async def failing_run(options):
        logging.getLogger('connect.eaas.runner').debug('setup_response: DATABASE_URL=s3cr3t')
        logging.getLogger('connect.eaas.runner').info('worker started')
        logging.getLogger('connect.eaas.runner').warning('cannot reach the database')
        raise demo.DemoFailed('1 of 1 events got no result')

    monkeypatch.setattr(demo, 'run_until_signal', failing_run)
    root = logging.getLogger()
    monkeypatch.setattr(root, 'level', logging.WARNING)
    log = tmp_path / 'runner.log'

    code = demo.main(['--log-file', str(log), *(['--debug'] if debug else [])])

    err = capsys.readouterr().err
    assert code == 1
    assert 'Demo failed: 1 of 1 events got no result' in err
    assert 'cannot reach the database' in err
    assert 's3cr3t' not in err
    assert ('worker started' in err) is not debug  # at DEBUG: warnings and errors only
    assert ('s3cr3t' in log.read_text()) is debug  # the log itself has it all
    assert root.level == logging.WARNING
