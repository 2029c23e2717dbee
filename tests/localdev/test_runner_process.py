"""Starting and stopping a runner-like process tree by its process group."""
import asyncio
import os
import signal
import sys
import textwrap
from typing import AsyncIterator, Callable, Tuple

import pytest

from localdev.runner_process import RunnerProcess, runner_command, runner_environment

# A master that starts a worker, like cextrun; argv[1] says which of them ignores SIGTERM.
WORKER = textwrap.dedent("""
    import signal, sys, time
    if sys.argv[1] == 'worker':
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)
""")
MASTER = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    worker = subprocess.Popen([sys.executable, sys.argv[3], sys.argv[1]])
    if sys.argv[1] == 'master':
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(sys.argv[2] + '.tmp', 'w') as pids:
        pids.write(f'{os.getpid()} {worker.pid}')
    os.rename(sys.argv[2] + '.tmp', sys.argv[2])
    print('started', flush=True)
    time.sleep(600)
""")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie runs nothing any more; it only waits for its parent to reap it.
    with open(f'/proc/{pid}/stat') as stat:
        return stat.read().rsplit(')', 1)[1].split()[0] != 'Z'


@pytest.fixture
async def start_tree(tmp_path) -> AsyncIterator[Callable]:
    started = []

    async def start(ignores: str) -> Tuple[RunnerProcess, int, int]:
        (tmp_path / 'master.py').write_text(MASTER)
        (tmp_path / 'worker.py').write_text(WORKER)
        pid_file = tmp_path / 'pids'
        process = RunnerProcess(
            env={}, cwd=tmp_path, log_path=tmp_path / 'logs' / 'runner.log', stop_grace=1,
            command=[sys.executable, 'master.py', ignores, str(pid_file), 'worker.py'],
        )
        await process.start()
        started.append(process)
        for _ in range(400):
            if pid_file.exists() or process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert pid_file.exists(), process.log_tail()
        master, worker = map(int, pid_file.read_text().split())
        return process, master, worker

    yield start
    for process in started:
        await process.stop()


@pytest.mark.parametrize('ignores', ['nothing', 'worker', 'master'])
async def test_stop_leaves_no_process_of_the_tree(start_tree, ignores):
    process, master, worker = await start_tree(ignores)
    assert alive(master)
    assert alive(worker)

    code = await process.stop()

    assert not alive(master)
    assert not alive(worker)
    assert code == (-signal.SIGKILL if ignores == 'master' else -signal.SIGTERM)
    assert 'started' in process.log_tail()


async def test_stop_of_a_process_that_already_exited_is_harmless(tmp_path):
    process = RunnerProcess(env={}, cwd=tmp_path, log_path=tmp_path / 'r.log',
                            command=[sys.executable, '-c', 'print("bye")'])
    await process.start()
    assert await process.wait() == 0

    assert await process.stop() == 0
    assert process.log_tail() == 'bye\n'


def test_the_runner_gets_no_proxy_and_the_given_variables():
    env = runner_environment(
        {'SERVER_ADDRESS': '127.0.0.1:1234'},
        base={'HTTPS_PROXY': 'http://proxy:3128', 'http_proxy': 'http://proxy:3128',
              'PATH': '/usr/bin'},
    )

    assert env['SERVER_ADDRESS'] == '127.0.0.1:1234'
    assert env['PATH'] == '/usr/bin'
    assert 'HTTPS_PROXY' not in env
    assert 'http_proxy' not in env
    assert env['NO_PROXY'] == '127.0.0.1,localhost'


def test_the_runner_runs_with_the_offline_options():
    command = runner_command()

    assert command[:3] == [sys.executable, '-m', 'connect.eaas.runner.main']
    assert '--no-validate' in command
    assert '--unsecure' not in command  # the emulation speaks TLS, as Connect does
