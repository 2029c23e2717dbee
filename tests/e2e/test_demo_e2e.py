"""`python -m localdev.demo`, as `make demo` runs it, on a few event files of its own."""
import json
import subprocess
import sys

import pytest

from connect_mongodb_example.recorder import stores_for
from connect_mongodb_example.settings import load_settings
from localdev.offline import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


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

    completed = subprocess.run(
        [sys.executable, '-m', 'localdev.demo', '--events', str(events),
         '--set', f'DATABASE_URL={database_url}', '--log-file', str(log), '--timeout', '180'],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=220, check=False,
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
