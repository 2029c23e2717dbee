"""The data lifecycle job in real OS processes on a real database: a scenario to run it on,
processes to run (and SIGKILL) it in, and the state one clean run leaves.

The scenario: installation GONE uninstalled under `ON_UNINSTALL=purge` long enough ago for
its purge to be due; installation STAYS installed, with events older and younger than
`EVENTS_RETENTION_DAYS`; events of no installation, old and young.
"""
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from connect.eaas.core.enums import ResultType

from connect_mongodb_example.event_record import utcnow
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import close_all, stores_for
from tests.support.lifecycle import (
    counted,
    counts,
    deliver_installation,
    fill,
    installation_object,
    stored_keys,
    unowned_keys,
)
from tests.support.lifecycle_job import DELETING, READY

REPO_ROOT = Path(__file__).resolve().parents[2]
GONE = 'EIN-0000-0000-GONE'
STAYS = 'EIN-0000-0000-STAY'
LIFECYCLE = {'ON_UNINSTALL': 'purge', 'PURGE_GRACE_DAYS': '30', 'EVENTS_RETENTION_DAYS': '90'}
#: Events per delete in the processes: small, so that a run takes many batches to kill in.
BATCH = 4
GONE_EVENTS, OLD_EVENTS, YOUNG_EVENTS = 40, 12, 8
#: A bound on one process: a hang is a failure, not a stuck suite (no timing claim).
PROCESS_BOUND_SECONDS = 180


@dataclass(frozen=True)
class Expected:
    """What one clean run leaves: the events of each installation (None: of none)."""

    kept: Dict[Optional[str], List[str]]
    purge_deleted: int
    retention_deleted: int


async def prepare(config: Mapping[str, str], logger) -> Expected:
    """Store the scenario through the application (the installation handler, the store)."""
    [store] = stores_for(load_settings(config))
    now = utcnow()
    old = [now - timedelta(days=100 + n) for n in range(OLD_EVENTS)]
    young = [now - timedelta(days=1 + n) for n in range(YOUNG_EVENTS)]
    await fill(store, GONE, [now - timedelta(days=n % 60) for n in range(GONE_EVENTS)])
    stays_old = await fill(store, STAYS, old)
    stays_young = await fill(store, STAYS, young, first=OLD_EVENTS)
    nobody_old = await fill(store, None, old[:3])
    nobody_young = await fill(store, None, young[:3], first=3)
    for installation in (
        installation_object(GONE, 'uninstalled', now - timedelta(days=31)),
        installation_object(STAYS, 'installed', now - timedelta(days=200)),
    ):
        response = await deliver_installation(installation, config, logger)
        assert response.status == ResultType.SUCCESS, response.output
    await close_all()
    return Expected(kept={GONE: [], STAYS: sorted(stays_young), None: sorted(nobody_young)},
                    purge_deleted=GONE_EVENTS,
                    retention_deleted=len(stays_old) + len(nobody_old))


async def assert_like_one_clean_run(config: Mapping[str, str], expected: Expected) -> None:
    """The stores hold what one clean run leaves: events, counts and installation records."""
    [store] = stores_for(load_settings(config))
    try:
        assert await stored_keys(store, GONE) == expected.kept[GONE]
        assert await counts(store, GONE) == (0, 0, 0, 0)
        assert await stored_keys(store, STAYS) == expected.kept[STAYS]
        assert await counts(store, STAYS) == await counted(store, STAYS)
        assert (await counts(store, STAYS))[0] == len(expected.kept[STAYS])
        assert await unowned_keys(store, 6) == expected.kept[None]
        gone = await store.get_installation(GONE)
        assert gone.status == 'uninstalled'
        assert gone.purged_at is not None
        assert gone.purged_at >= gone.purge_after
        stays = await store.get_installation(STAYS)
        assert (stays.status, stays.purge_after, stays.purged_at) == ('installed', None, None)
    finally:
        await close_all()


def start_job(
    config: Mapping[str, str], pause: float = 0.0, wait: bool = False,
) -> subprocess.Popen:
    """A process running the data lifecycle schedule once (tests/support/lifecycle_job.py);
    with `wait`, it starts the run when `start_together` says so."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(('COV_CORE', 'PYTEST_'))}
    environment.update(LIFECYCLE_CONFIG=json.dumps(dict(config)), LIFECYCLE_BATCH=str(BATCH),
                       LIFECYCLE_PAUSE=str(pause), LIFECYCLE_WAIT='1' if wait else '',
                       PYTHONPATH=os.pathsep.join(filter(None, [
                           str(REPO_ROOT), os.environ.get('PYTHONPATH')])))
    return subprocess.Popen(
        [sys.executable, '-m', 'tests.support.lifecycle_job'], cwd=REPO_ROOT, env=environment,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_together(jobs: List[subprocess.Popen]) -> None:
    """Once every job (started with `wait`) has loaded, let them all start their run."""
    for job in jobs:
        line = job.stdout.readline().strip()
        assert line == READY, f'{line!r}: {job.stderr.read()[-3000:] if not line else ""}'
    for job in jobs:
        job.stdin.write('go\n')
        job.stdin.flush()


def kill_at_batch(job: subprocess.Popen, batch: int) -> int:
    """SIGKILL the job once it announces its `batch`-th delete; the batches it announced."""
    announced = 0
    for line in job.stdout:
        if line.strip() == DELETING:
            announced += 1
            if announced == batch:
                os.kill(job.pid, signal.SIGKILL)
                break
    job.wait(timeout=PROCESS_BOUND_SECONDS)
    job.stdout.close()
    job.stderr.close()
    assert job.returncode == -signal.SIGKILL, f'the job ended by itself after {announced}'
    return announced


def finish(job: subprocess.Popen) -> Tuple[str, str, int, int]:
    """Wait for the job: its task result, output, and the events it deleted by purges and
    by retention (what its output says)."""
    stdout, stderr = job.communicate(timeout=PROCESS_BOUND_SECONDS)
    assert job.returncode == 0, stderr[-3000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    output = result['output']
    return (result['status'], output, _deleted(output, 'purges'),
            _deleted(output, 'retention'))


def _deleted(output: str, by: str) -> int:
    return sum(int(number) for number in re.findall(rf'(\d+) events? deleted by {by}', output))
