"""`python -m localdev.demo`, as `make demo` runs it, on a few event files of its own."""
import json
import re
import signal
import subprocess
import sys
from typing import List, Sequence

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


def cells(line: str) -> List[str]:
    """A table row's cells (they are two spaces or more apart)."""
    return re.split(r'\s{2,}', line.strip())


async def test_the_demo_stores_the_event_files_then_the_lifecycle_deletes_what_is_due(
    tmp_path, purchase_request, installation,
):
    """An installation's event delivered twice, an event of no installation, one the runner
    skips, then the installation uninstalled and the data lifecycle job run, over a history
    event of another installation, received long ago."""
    other = {'id': 'EIN-6666-0000-0000', 'owner': {'id': 'PA-666-666', 'name': 'Other'}}
    events = tmp_path / 'events'
    (events / 'history').mkdir(parents=True)
    (events / 'history' / '01-old.json').write_text(json.dumps(
        {'installation': other, 'request': purchase_request('PR-6666-0000-0000-001')}))
    (events / '01-pending.json').write_text(json.dumps(
        {'installation': installation, 'deliveries': 2,
         'request': purchase_request('PR-7777-0000-0000-001', 'pending')},
    ))
    (events / '02-single-account.json').write_text(json.dumps(
        purchase_request('PR-8888-0000-0000-001', 'revoked'),
    ))
    # Skipped by the runner (no subscription to drafts): the outcome its input calls for.
    (events / '03-draft.json').write_text(json.dumps(
        purchase_request('PR-9999-0000-0000-001', 'draft'),
    ))
    (events / '04-uninstalled.json').write_text(json.dumps(
        {'installation_status': 'uninstalled', 'installation': installation}))
    (events / '05-job.json').write_text(json.dumps({'schedule': {}}))
    database_url = f'sqlite:///{tmp_path}/demo.sqlite3'
    log = tmp_path / 'demo.log'

    completed = run_demo(
        ['--events', str(events), '--set', f'DATABASE_URL={database_url}',
         '--set', 'STORAGE_TIMEOUT_SECOND=5', '--set', 'ON_UNINSTALL=purge',
         '--set', 'PURGE_GRACE_DAYS=0', '--set', 'EVENTS_RETENTION_DAYS=365',
         '--log-file', str(log), '--timeout', '180'],
        timeout=200,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr + log.read_text()
    lines = completed.stdout.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith('event '))) + 2:]
    rows = [cells(line) for line in table[:table.index('')]]
    assert rows[:5] == [
        ['PR-6666-0000-0000-001', 'pending', other['id'], other['owner']['id'], 'deleted',
         'seeded', 'past retention, deleted by the Data lifecycle job'],
        ['PR-7777-0000-0000-001', 'pending', installation['id'], installation['owner']['id'],
         'deleted', 'done, done', 'purged by the Data lifecycle job'],
        ['PR-8888-0000-0000-001', 'revoked', '-', '-', '1x', 'done'],
        ['PR-9999-0000-0000-001', 'draft', '-', '-', '-', 'skip'] + rows[3][6:],
        [installation['id'], 'uninstalled', installation['id'], installation['owner']['id'],
         'uninstalled', 'done'] + rows[4][6:],
    ]
    assert rows[3][6].startswith("as expected: status 'draft' is not one the extension")
    assert rows[5] == ['Data lifecycle', 'job', 'all', '-', '-', 'done',
                       'deleted 2: 1 purged, 1 past retention']
    assert '2 of 2 events stored' in completed.stdout
    assert '1 skipped as its input calls for' in completed.stdout
    assert '  Read back: it deleted 2 events, all due:' in lines
    assert (f'Events stored now, per installation: {other["id"]} 0, {installation["id"]} 0 '
            f'(uninstalled), no installation 1.') in lines
    assert completed.stderr == (
        'Warning: --set STORAGE_TIMEOUT_SECOND: STORAGE_TIMEOUT_SECOND is not a variable of '
        'the extension (did you mean STORAGE_TIMEOUT_SECONDS?); nothing reads it\n'
    )
    # The runner's output went to the log, both sides of the conversation.
    text = log.read_text()
    assert 'BackgroundEventsWorker connected' in text
    assert 'localdev.connect_emulator.server' in text
    # What the extension keeps, read through its own storage interface after the demo.
    [store] = stores_for(load_settings({'DATABASE_URL': database_url}))
    assert await store.find('PR-7777-0000-0000-001', installation['id']) == []
    assert [record.delivery_count for record in await store.find('PR-8888-0000-0000-001')] == [1]
    kept = await store.get_installation(installation['id'])
    assert (kept.status, kept.account_id) == ('uninstalled', installation['owner']['id'])
