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


def test_the_report_shows_each_event_its_stored_count_and_results(
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
            {'sql (sqlite:///x)': None},
        ),
    ]

    lines = demo.report_lines(rows)

    assert lines[0].split() == ['request', 'status', 'installation', 'account', 'stored',
                                'task', 'results']
    assert lines[2].split() == ['PR-1', 'approved', installation['id'],
                                installation['owner']['id'], '2x', 'success,', 'success']
    assert lines[3].split()[:6] == ['PR-2', 'draft', '-', '-', 'NOT', 'STORED']
    assert lines[4] == ('  ! PR-2 (draft) task TQ-3 skip: The request status does not match')
    assert [row.stored for row in rows] == [True, False]


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


def test_notes_say_why_a_task_did_not_succeed(purchase_request):
    event = Event(purchase_request('PR-3', 'pending'))
    row = StoredEvent(Delivery(event, [
        TaskResult('TQ-4', 'PR-3', None, 'reschedule', countdown=30),
        TaskResult('TQ-5', 'PR-3', None, 'retry',
                   message='Traceback (most recent call last):\n  ...\nStorageRejected: denied'),
    ]), {'sql': None})

    assert demo.report_lines([row], header=False)[1:] == [
        '  ! PR-3 (pending) task TQ-4 reschedule: Connect would deliver it again in 30s '
        '(the emulation does not)',
        '  ! PR-3 (pending) task TQ-5 retry: StorageRejected: denied',
    ]


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
