"""Start and stop the real extension runner (`cextrun`) as a subprocess.

The runner's master process forks worker processes (spawn), so it is started in a new
session, and stopped by signalling that process group: SIGTERM, a grace period, then
SIGKILL for whatever is left. Nothing outlives `stop()`, even a cancelled one.

A new session also means no terminal hang-up reaches it: if its parent (demo, pytest, bench)
is killed outright, the runner would go on retrying the vanished emulation for many minutes.
So on Linux it is started through `LAUNCHER`, which asks the kernel to send it SIGTERM when
the parent dies (PR_SET_PDEATHSIG); the runner's master stops its workers on SIGTERM.
"""
import asyncio
import os
import signal
import sys
from collections import deque
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

#: The runner's own entry point (the `cextrun` console script runs the same function).
RUNNER_MODULE = 'connect.eaas.runner.main'
#: --no-validate: the start-up validation asks PyPI and the real Connect for the latest
#:   runner version and cannot pass offline; --no-rich-logging: plain lines for the log file.
RUNNER_OPTIONS = ('--no-validate', '--no-rich-logging')
PROXY_VARIABLES = (
    'HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'WS_PROXY', 'WSS_PROXY',
    'http_proxy', 'https_proxy', 'all_proxy', 'ws_proxy', 'wss_proxy',
)
#: The runner stops its workers within a few seconds; this is the wait for the master, then
#: again for any process left in its group, before SIGKILL.
STOP_GRACE_SECONDS = 20
KILL_WAIT_SECONDS = 5

#: `python -c LAUNCHER PARENT_PID PROGRAM ARG...`: exec PROGRAM, to be sent SIGTERM when the
#: process PARENT_PID dies. The setting survives exec. The parent may have died before it was
#: made, so the parent is checked after; exit code 1 says it was already gone.
LAUNCHER = (
    'import ctypes, os, signal, sys\n'
    'PR_SET_PDEATHSIG = 1\n'
    'libc = ctypes.CDLL(None, use_errno=True)\n'
    'if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:\n'
    '    sys.exit(f"prctl(PR_SET_PDEATHSIG): {os.strerror(ctypes.get_errno())}")\n'
    'if os.getppid() != int(sys.argv[1]):\n'
    '    sys.exit(1)\n'
    'os.execv(sys.argv[2], sys.argv[2:])\n'
)


class RunnerExited(RuntimeError):
    """The runner process ended while it was expected to run."""


def runner_command(debug: bool = False) -> List[str]:
    return [sys.executable, '-m', RUNNER_MODULE, *RUNNER_OPTIONS, *(['--debug'] if debug else [])]


def tied_to_parent(command: Sequence[str], parent: Optional[int] = None) -> List[str]:
    """`command`, run so that it gets SIGTERM when `parent` (this process) dies; on systems
    without PR_SET_PDEATHSIG (not Linux), `command` unchanged. Strictly, the signal comes
    when the thread that started it ends: start it from the event loop's (main) thread."""
    if not sys.platform.startswith('linux'):
        return list(command)
    parent = os.getpid() if parent is None else parent
    return [sys.executable, '-c', LAUNCHER, str(parent), *command]


def runner_environment(
    overrides: Mapping[str, str], base: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    """This process's environment, minus proxies (they would catch the loopback traffic:
    the runner reads HTTP(S)_PROXY for its websocket), plus `overrides`."""
    env = {name: value for name, value in (base or os.environ).items()
           if name not in PROXY_VARIABLES}
    env['NO_PROXY'] = env['no_proxy'] = '127.0.0.1,localhost'
    env['PYTHONUNBUFFERED'] = '1'
    env.update(overrides)
    return env


class RunnerProcess:
    def __init__(
        self,
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        debug: bool = False,
        command: Optional[Sequence[str]] = None,
        stop_grace: float = STOP_GRACE_SECONDS,
    ):
        self.env = runner_environment(env)
        self.cwd = Path(cwd)
        self.log_path = Path(log_path)
        self.command = list(command) if command else runner_command(debug)
        self.stop_grace = stop_grace
        self._process: Optional[asyncio.subprocess.Process] = None

    @property
    def pid(self) -> Optional[int]:
        """The runner's master process (its workers are in its process group)."""
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> Optional[int]:
        return self._process.returncode if self._process else None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Appended to: the caller may log its own side of the conversation in the same file.
        with self.log_path.open('ab') as log:
            # The child keeps its own copy of the file descriptor.
            self._process = await asyncio.create_subprocess_exec(
                *tied_to_parent(self.command),
                cwd=str(self.cwd),
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait(self) -> int:
        """Until the runner exits on its own; its exit code."""
        if self._process is None:
            raise RuntimeError('the runner is not started')
        return await self._process.wait()

    async def stop(self) -> Optional[int]:
        """Stop the runner and every process it started; its exit code."""
        process = self._process
        if process is None:
            return None
        group = process.pid  # start_new_session: the group id is the leader's pid
        try:
            if process.returncode is None:
                _signal_group(group, signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), self.stop_grace)
                except asyncio.TimeoutError:
                    _signal_group(group, signal.SIGKILL)
                    await process.wait()
            await _until_group_gone(group, self.stop_grace)
        except BaseException:
            # Cancelled (Ctrl+C again, a test timeout) or failed half-way: no time is left
            # for a graceful stop, and nothing may outlive it.
            _signal_group(group, signal.SIGKILL)
            raise
        return process.returncode

    async def kill(self) -> None:
        """SIGKILL the runner and every process it started at once, as when its container
        dies: no shutdown message, no result still queued is sent."""
        process = self._process
        if process is None:
            return
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()
        await _until_group_gone(process.pid, KILL_WAIT_SECONDS)

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines)


def log_tail(path: Path, lines: int = 60) -> str:
    """The last `lines` lines of a log file; '' if it cannot be read."""
    try:
        with Path(path).open(encoding='utf-8', errors='replace') as log:
            return ''.join(deque(log, maxlen=lines))
    except OSError:
        return ''


def _signal_group(group: int, signum: int) -> bool:
    try:
        os.killpg(group, signum)
        return True
    except ProcessLookupError:
        return False


async def _until_group_gone(group: int, grace: float) -> None:
    """Workers exit after the master; any still running after `grace` seconds are killed."""
    if await _group_gone_within(group, grace):
        return
    _signal_group(group, signal.SIGKILL)
    if not await _group_gone_within(group, max(grace, KILL_WAIT_SECONDS)):
        raise RuntimeError(f'processes of group {group} survived SIGKILL: {_members(group)}')


async def _group_gone_within(group: int, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while _members(group):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _members(group: int) -> List[int]:
    """The processes of the group that still run. A zombie does not count: it is dead and
    waits for its new parent (init) to reap it, which we cannot hurry. Without /proc, any
    member counts."""
    proc = Path('/proc')
    if not (proc / 'self' / 'stat').exists():
        return [group] if _signal_group(group, 0) else []
    members = []
    for stat in proc.glob('[0-9]*/stat'):
        try:
            # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[2]) == group and fields[0] != 'Z':
            members.append(int(stat.parent.name))
    return members
