"""Installation status changes and schedule runs, delivered by the emulation to the real
connect-extension-runner, reach the extension's handlers as Connect sends them.

The runner loads a recording extension (tests/support/recording_extension.py) that
declares `handle_installation_status_change` and `run_data_lifecycle` and writes down what
it was handed. (The extension's own outcome, the installation records and the purges it
stores, is checked through `make demo` in test_demo_e2e.py.)
"""
import asyncio

import pytest

from localdev.connect_emulator import InstallationChange, ScheduleRun
from localdev.offline import offline_runner
from tests.support.recording_extension import recorded, runner_environment

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

INSTALLATION = {
    'id': 'EIN-5555-6666-7777', 'owner': {'id': 'VA-555-666', 'name': 'Vendor Five'},
    'environment': {'id': 'ENV-0000-0000-01'}, 'settings': {},
}
DELIVERY_TIMEOUT_SECONDS = 90


async def test_status_changes_and_schedule_runs_reach_the_extension_as_connect_sends_them(
    tmp_path,
):
    recording = tmp_path / 'received.jsonl'
    log = tmp_path / 'runner.log'
    try:
        async with offline_runner(
            variables={'DATABASE_URL': f'sqlite:///{tmp_path}/events.sqlite3'}, log_path=log,
            env=runner_environment(tmp_path, recording),
        ) as emulator:
            installed, uninstalled, every, one = await asyncio.wait_for(emulator.deliver_all([
                InstallationChange(INSTALLATION, 'installed'),
                InstallationChange(INSTALLATION, 'uninstalled', deliveries=2),
                ScheduleRun(),
                ScheduleRun('run_data_lifecycle', {'installation_id': INSTALLATION['id']}),
            ]), DELIVERY_TIMEOUT_SECONDS)
    finally:
        print(log.read_text(errors='replace')[-8000:])  # shown when the test fails

    # The runner's answers, over the websocket.
    assert [[result.result for result in delivery.results]
            for delivery in (installed, uninstalled, every, one)] == [
        ['success'], ['success', 'success'], ['success'], ['success'],
    ]
    assert {result.installation_id for result in installed.results + uninstalled.results} == {
        INSTALLATION['id'],
    }
    assert every.results[0].message == f'recorded schedule {every.served["id"]}'
    assert emulator.unknown_calls == []
    # Where the runner read them: the event definition's collection (the count that checks
    # the status is subscribed) and resource, the task's installation, the schedule.
    paths = {call.path.replace('/public/v1/', '') for call in emulator.api.calls}
    service, environment = emulator.service_id, emulator.environment_id
    assert paths == {
        'devops/installations', f'devops/installations/{INSTALLATION["id"]}',
        f'devops/services/{service}/installations/{INSTALLATION["id"]}',
        f'devops/services/{service}/environments/{environment}/schedules/{every.served["id"]}',
        f'devops/services/{service}/environments/{environment}/schedules/{one.served["id"]}',
    }

    # What the extension was handed: the installation as it was after each change, with
    # the time of each status; the installation fetched for the task is the same object.
    changes = recorded(recording, 'handle_installation_status_change')
    assert [call['argument'] for call in changes] == [
        installed.served, uninstalled.served, uninstalled.served,
    ]
    assert [call['installation'] for call in changes] == [call['argument'] for call in changes]
    assert [call['argument']['status'] for call in changes] == [
        'installed', 'uninstalled', 'uninstalled',
    ]
    events = uninstalled.served['events']
    assert events['installed'] == installed.served['events']['installed']
    assert events['installed']['at'] < events['uninstalled']['at'] == events['updated']['at']
    assert uninstalled.served['owner'] == INSTALLATION['owner']

    # The schedule object, read by the runner, names the method and carries the parameter.
    runs = recorded(recording, 'run_data_lifecycle')
    assert [call['argument'] for call in runs] == [every.served, one.served]
    assert [(run['method'], run['parameter'], run['name'])
            for run in (every.served, one.served)] == [
        ('run_data_lifecycle', {}, 'Data lifecycle'),
        ('run_data_lifecycle', {'installation_id': INSTALLATION['id']}, 'Data lifecycle'),
    ]
    assert [call['installation'] for call in runs] == [None, None]
