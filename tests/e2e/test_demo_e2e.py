"""`python -m localdev.demo`, as `make demo` runs it, on a few event files of its own."""
import json
import signal
import subprocess
import sys
from typing import Sequence

import pytest

from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import stores_for
from localdev.offline import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def run_demo(arguments: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    """The demo as `make demo` runs it. Past `timeout`, SIGTERM first: the demo then stops
    its runner, which SIGKILL would leave behind; SIGKILL only if that does not end it."""
    with subprocess.Popen(
        [sys.executable, '-m', 'localdev.demo', *arguments],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as demo:
        try:
            stdout, stderr = demo.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            demo.send_signal(signal.SIGTERM)
            try:
                demo.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.communicate()
            raise
    return subprocess.CompletedProcess(demo.args, demo.returncode, stdout, stderr)


async def test_the_demo_stores_the_event_files_and_prints_the_table(
    tmp_path, purchase_request, installation,
):
    events = tmp_path / 'events'
    events.mkdir()
    (events / '01-pending.json').write_text(json.dumps(
        {'installation': installation, 'deliveries': 2,
         'request': purchase_request('PR-7777-0000-0000-001', 'pending')},
    ))
    (events / '02-single-account.json').write_text(json.dumps(
        purchase_request('PR-8888-0000-0000-001', 'revoked'),
    ))
    database_url = f'sqlite:///{tmp_path}/demo.sqlite3'
    log = tmp_path / 'demo.log'

    completed = run_demo(
        ['--events', str(events), '--set', f'DATABASE_URL={database_url}',
         '--log-file', str(log), '--timeout', '180'],
        timeout=200,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr + log.read_text()
    rows = [line.split() for line in completed.stdout.splitlines() if line.startswith('PR-')]
    assert rows == [
        ['PR-7777-0000-0000-001', 'pending', installation['id'], installation['owner']['id'],
         '2x', 'success,', 'success'],
        ['PR-8888-0000-0000-001', 'revoked', '-', '-', '1x', 'success'],
    ]
    assert '2 of 2 events stored' in completed.stdout
    assert completed.stderr == ''
    # The runner's output went to the log, both sides of the conversation.
    text = log.read_text()
    assert 'BackgroundEventsWorker connected' in text
    assert 'localdev.connect_emulator.server' in text
    [store] = stores_for(load_settings({'DATABASE_URL': database_url}))
    [record] = await store.find('PR-7777-0000-0000-001', installation['id'])
    assert (record.status, record.delivery_count) == ('pending', 2)
