"""The scale-out benchmark: its no-op extension, its memory sampling, and a quick run of the
whole thing through real runners (structure and outcomes only, never timing)."""
import os
import re
import signal
import subprocess
import sys

import pytest
from connect.eaas.core.enums import ResultType

from connect_mongodb_example.extension import StatefulEventsApplication
from localdev.bench import scaleout as bench_scaleout
from localdev.bench.rss import RunnerMemory, worker_roles
from localdev.noop_extension import NoopEventsApplication, entry_point_path
from localdev.offline import REPO_ROOT

ROW = re.compile(r'^\s*(\d+) ms\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+|-)\s+(\d+)$')
NOOP_ROW = re.compile(r'^\s*(\d+) ms\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+|-)$')
MEMORY_ROW = re.compile(r'^\s*(\d+)\s+(\S+)\s+(\d+|-)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$')


async def test_the_noop_extension_answers_done_for_the_same_events_and_variables(
    purchase_request, logger,
):
    app = NoopEventsApplication(client=None, logger=logger, config={})

    response = await app.handle_asset_purchase_request_processing(purchase_request())

    assert response.status == ResultType.SUCCESS
    assert NoopEventsApplication.get_events() == StatefulEventsApplication.get_events()
    assert NoopEventsApplication.get_variables() == StatefulEventsApplication.get_variables()
    assert NoopEventsApplication.get_descriptor() == StatefulEventsApplication.get_descriptor()


def test_the_runner_loads_the_noop_extension_from_the_entry_point_path(tmp_path):
    path = entry_point_path(str(tmp_path))
    probe = ('from connect.eaas.runner.handlers.events import EventsApp\n'
             'from connect.eaas.runner.config import ConfigHelper\n'
             'print(EventsApp(ConfigHelper(secure=False)).get_application().__name__)\n')
    env = {name: value for name, value in os.environ.items()
           if name not in ('API_KEY', 'ENVIRONMENT_ID', 'INSTANCE_ID')}
    env.update(PYTHONPATH=path, API_KEY='ApiKey SU-0:x', ENVIRONMENT_ID='ENV-0000-0000-01')

    loaded = subprocess.run([sys.executable, '-c', probe], env=env, capture_output=True,
                            text=True, timeout=60)

    assert loaded.stdout.strip().splitlines()[-1:] == ['NoopEventsApplication'], loaded.stderr


def test_memory_of_a_process_group_is_sampled_and_workers_named(tmp_path):
    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],
                             start_new_session=True)
    try:
        memory = RunnerMemory(child.pid)
        memory.sample()
        memory.sample()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    [process] = memory.processes.values()
    assert 0 < process.first <= process.peak
    assert process.last <= process.peak
    assert memory.total.peak == process.peak
    log = tmp_path / 'runner.log'
    log.write_text(f'x connect.eaas INFO PID_{child.pid} Background worker pid: 11\n'
                   f'x connect.eaas INFO PID_99999999 Interactive worker pid: 12\n')
    assert worker_roles(log, child.pid) == {child.pid: 'master', 11: 'background'}


def readme_sizing_processes() -> set:
    """The runner processes of the memory tables docs/sizing.md quotes."""
    sizing = (REPO_ROOT / 'docs' / 'sizing.md').read_text()
    tables = [table.split('```')[0] for table in sizing.split('\nrunner  process')[1:]]
    return {MEMORY_ROW.match(line).group(2) for table in tables for line in table.splitlines()
            if MEMORY_ROW.match(line)}


@pytest.mark.e2e
@pytest.mark.timeout(280)
def test_quick_scaleout_bench_prints_the_three_tables(capsys):
    # One instance keeps the suite fast; the bench's own quick mode also runs two.
    assert bench_scaleout.main(['--quick', '--database', 'sqlite', '--instances', '1']) == 0

    out = capsys.readouterr().out
    assert out.startswith('Machine: ')
    assert ' cores' in out.splitlines()[0]
    lines = out.splitlines()
    rows = [ROW.match(line).groups() for line in lines if ROW.match(line)]
    assert [(int(r[0]), int(r[1])) for r in rows] == [(0, 1), (50, 1)]
    assert all(r[5] == '1.00' and r[6] == '0' for r in rows)  # vs itself; nothing failed
    noop_rows = [NOOP_ROW.match(line).groups() for line in lines if NOOP_ROW.match(line)]
    assert [(int(r[0]), int(r[1])) for r in noop_rows] == [(0, 1), (50, 1)]
    # Only the memory table's rows: a no-op row (`0 ms  1  12.3  13.4  0.92`) has its shape too.
    memory_lines = lines[lines.index(next(line for line in lines if line.startswith('Memory'))):]
    memory = [MEMORY_ROW.match(line).groups() for line in memory_lines if MEMORY_ROW.match(line)]
    processes = {row[1] for row in memory}
    assert {'master', 'background', 'interactive', 'webapp', 'all'} <= processes
    # docs/sizing.md (memory, database connections) accounts for every process a runner has.
    assert processes <= readme_sizing_processes()
    # Every event of the memory run was answered, by the one runner's background worker.
    assert [row[2] for row in memory if row[1] in ('background', 'all')] == ['50', '50']
    for _, _, _, start, peak, final in memory:
        assert 0 < float(start) <= float(peak)
        assert float(final) <= float(peak)
    assert "Memory (RSS) of each runner's processes over 50 events" in out
