"""The demo's inputs and report, without starting a runner."""
import json
import logging

import pytest

from connect_mongodb_example.settings import load_settings, variable_declarations
from localdev import demo
from localdev.connect_emulator import Event, InstallationChange, ScheduleRun, load_items
from localdev.connect_emulator.protocol import variable_values
from localdev.demo_history import HISTORY_AGE_DAYS, history_events


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


def test_bad_event_files_stop_the_demo_before_anything_starts(tmp_path, capsys):
    (tmp_path / 'events').mkdir()
    (tmp_path / 'events' / 'bad.json').write_text('{"request": {"id": "PR-1"}}')

    code = demo.main(['--events', str(tmp_path / 'events'),
                      '--log-file', str(tmp_path / 'runner.log')])

    assert code == 2
    assert "bad.json: the request needs a non-empty string 'status'" in capsys.readouterr().err


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


def test_the_shipped_demo_shows_an_uninstall_with_purge_and_a_retention_run():
    settings = load_settings(variable_values(
        variable_declarations(), demo.load_variables(demo.DEFAULT_VARIABLES)))
    items = load_items(demo.DEFAULT_EVENTS)
    history = history_events(demo.DEFAULT_EVENTS)

    assert (settings.on_uninstall, settings.purge_grace_days) == ('purge', 0)
    [uninstall] = [item for item in items if isinstance(item, InstallationChange)]
    [job] = [item for item in items if isinstance(item, ScheduleRun)]
    assert uninstall.status == 'uninstalled'
    assert items.index(job) > items.index(uninstall)  # the job runs after it
    purged = [item for item in items[:items.index(uninstall)]
              if isinstance(item, Event) and item.installation_id == uninstall.installation_id]
    assert len(purged) >= 2
    # The history is older than the retention, and of an installation that stays installed:
    # the job deletes it for its age alone.
    assert history
    assert settings.retention_days < HISTORY_AGE_DAYS
    assert uninstall.installation_id not in {event.installation_id for event in history}


@pytest.mark.parametrize(('arguments', 'schedule'), [
    ([], None), (['--schedule'], ''), (['--schedule', 'EIN-1'], 'EIN-1'),
])
def test_schedule_runs_the_job_after_the_events_for_every_installation_or_one(
    arguments, schedule,
):
    assert demo.parse_args(arguments).schedule == schedule


def test_what_is_delivered_is_counted_by_kind(purchase_request, installation):
    items = [Event(purchase_request('PR-1'), deliveries=2), Event(purchase_request('PR-2')),
             InstallationChange(installation, 'uninstalled'), ScheduleRun(), ScheduleRun()]

    assert demo.describe_items(items) == (
        '2 events (3 deliveries), 1 installation status change and 2 job runs')
    assert demo.describe_items(items[:1]) == '1 events (2 deliveries)'
