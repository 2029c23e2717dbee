"""Starting and stopping a runner-like process tree by its process group."""
import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import AsyncIterator, Callable, Tuple

import pytest

from localdev.offline import REPO_ROOT
from localdev.runner_process import (
    LAUNCHER,
    RunnerProcess,
    _members,
    runner_command,
    runner_environment,
    tied_to_parent,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith('linux'),
                                reason='PR_SET_PDEATHSIG is Linux only')

# A master that starts a worker, like cextrun; argv[1] says which of them ignores SIGTERM.
WORKER = textwrap.dedent("""
    import signal, sys, time
    if sys.argv[1] in ('worker', 'both'):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print('ready', flush=True)
    time.sleep(600)
""")
MASTER = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    worker = subprocess.Popen([sys.executable, sys.argv[3], sys.argv[1]], stdout=subprocess.PIPE)
    worker.stdout.readline()  # its signal disposition is set
    if sys.argv[1] in ('master', 'both'):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(sys.argv[2] + '.tmp', 'w') as pids:
        pids.write(f'{os.getpid()} {worker.pid}')
    os.rename(sys.argv[2] + '.tmp', sys.argv[2])
    print('started', flush=True)
    time.sleep(600)
""")


# Like the demo: starts the runner command (tied to itself) in a new session, says the pid.
PARENT = textwrap.dedent("""
    import subprocess, sys, time
    from localdev.runner_process import tied_to_parent
    child = subprocess.Popen(tied_to_parent([sys.executable, '-c', 'import time; time.sleep(600)']),
                             start_new_session=True)
    print(child.pid, flush=True)
    time.sleep(600)
""")


def eventually(condition: Callable[[], bool], seconds: float = 30) -> bool:
    """Whether `condition` holds within `seconds` (a bound for a slow machine, not a speed)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def alive(pid: int) -> bool:
    """Whether `pid` runs. A zombie runs nothing any more: it only waits for its parent to
    reap it. The process may end, and be reaped, at any point of this check, and a read of
    /proc/PID/stat then fails (FileNotFoundError, or ProcessLookupError mid-read): gone."""
    try:
        os.kill(pid, 0)
        with open(f'/proc/{pid}/stat') as stat:
            fields = stat.read().rsplit(')', 1)[1].split()
    except (ProcessLookupError, FileNotFoundError, IndexError):  # IndexError: an empty read
        return False
    return fields[0] != 'Z'


def test_a_process_that_ends_between_the_checks_is_not_alive(monkeypatch):
    """The race alive() must survive: os.kill finds the process, then it is reaped before
    /proc/PID/stat is read. Reproduced with a process already reaped and a kill that
    still finds it."""
    ended = subprocess.Popen([sys.executable, '-c', ''])
    ended.wait()
    monkeypatch.setattr(os, 'kill', lambda pid, signum: None)

    assert not alive(ended.pid)


@pytest.fixture
async def start_tree(tmp_path) -> AsyncIterator[Callable]:
    started = []

    async def start(ignores: str, stop_grace: float = 1) -> Tuple[RunnerProcess, int, int]:
        (tmp_path / 'master.py').write_text(MASTER)
        (tmp_path / 'worker.py').write_text(WORKER)
        pid_file = tmp_path / 'pids'
        process = RunnerProcess(
            env={}, cwd=tmp_path, log_path=tmp_path / 'logs' / 'runner.log',
            stop_grace=stop_grace,
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


async def test_a_cancelled_stop_still_kills_the_whole_tree(start_tree):
    process, master, worker = await start_tree('both', stop_grace=60)
    stopping = asyncio.ensure_future(process.stop())
    await asyncio.sleep(0.2)  # into the grace period: SIGTERM sent, and ignored by both
    assert alive(master)
    assert alive(worker)

    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping

    assert eventually(lambda: not alive(master) and not alive(worker))
    assert _members(master) == []  # the group: the master's pid (start_new_session)


@linux_only
def test_the_runner_gets_sigterm_when_its_parent_is_killed(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, '-c', PARENT], stdout=subprocess.PIPE, text=True,
        cwd=REPO_ROOT,
    )
    try:
        child = int(parent.stdout.readline())
        # The launcher has exec'd the command once its command line is the command's.
        assert eventually(lambda: b'time.sleep(600)' in read_cmdline(child)
                          and LAUNCHER.encode() not in read_cmdline(child))
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()

    assert eventually(lambda: not alive(child))


@linux_only
def test_the_launcher_refuses_to_start_if_its_parent_is_already_gone():
    not_the_parent = os.getpid()  # the launcher's parent is the shell, not this process
    completed = subprocess.run(
        ['/bin/sh', '-c', '"$@"', 'sh',
         *tied_to_parent([sys.executable, '-c', 'print("started")'], parent=not_the_parent)],
        capture_output=True, text=True, timeout=60, check=False,
    )

    assert completed.returncode == 1
    assert 'started' not in completed.stdout


@linux_only
def test_the_launcher_runs_the_command_with_its_arguments(tmp_path):
    completed = subprocess.run(
        tied_to_parent([sys.executable, '-c', 'import sys; print(sys.argv[1:])', 'a b', '-m']),
        capture_output=True, text=True, timeout=60, check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "['a b', '-m']\n"


def read_cmdline(pid: int) -> bytes:
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as cmdline:
            return cmdline.read()
    except OSError:
        return b''


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
