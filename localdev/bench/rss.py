"""Resident memory (RSS) of a runner's processes, sampled while it works.

A runner is its master process and the processes it starts (a worker per feature, and
multiprocessing's resource tracker), all in the master's process group. psutil reads RSS
where it is installed; otherwise Linux's /proc does.
"""
import asyncio
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

try:
    import psutil
except ImportError:  # pragma: no cover - psutil comes with the dev dependencies
    psutil = None

#: The master logs `Background worker pid: 123` for each worker it starts.
WORKER_PID = re.compile(r'PID_(\d+) .*?(\w+) worker pid: (\d+)')
#: What reading a process that has just ended raises.
GONE = (OSError, IndexError, ValueError) + ((psutil.Error,) if psutil is not None else ())
PAGE_SIZE = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096


def rss_bytes(pid: int) -> Optional[int]:
    """The process's resident memory; None if it has ended."""
    try:
        if psutil is not None:
            return psutil.Process(pid).memory_info().rss
        # statm: size resident shared ... in pages
        return int(Path(f'/proc/{pid}/statm').read_text().split()[1]) * PAGE_SIZE
    except GONE:
        return None


def group_members(group: int) -> List[int]:
    """The live processes whose process group is `group`."""
    if psutil is not None:
        pids = psutil.pids()
    else:
        pids = [int(entry.name) for entry in Path('/proc').iterdir() if entry.name.isdigit()]
    members = []
    for pid in pids:
        try:
            if os.getpgid(pid) == group:
                members.append(pid)
        except OSError:
            continue  # ended while we looked
    return members


def worker_roles(log_path: Path, master: int) -> Dict[int, str]:
    """pid -> 'background', 'interactive', ... for the workers `master` logged starting;
    the master itself is 'master'. Other processes of its group are not named here (see
    `process_name`)."""
    roles = {master: 'master'}
    try:
        text = Path(log_path).read_text(encoding='utf-8', errors='replace')
    except OSError:
        return roles
    for match in WORKER_PID.finditer(text):
        if int(match.group(1)) == master:
            roles[int(match.group(3))] = match.group(2).lower()
    return roles


def process_name(pid: int) -> str:
    """What an unnamed process of a runner is: multiprocessing's resource tracker (it keeps
    the runner's shared locks), or 'other'."""
    try:
        command = Path(f'/proc/{pid}/cmdline').read_bytes()
    except OSError:
        return 'other'
    return 'mp-tracker' if b'resource_tracker' in command else 'other'


@dataclass
class ProcessMemory:
    first: int
    peak: int
    last: int


@dataclass
class RunnerMemory:
    """RSS per process of one runner, by pid, and the runner's total, over the samples."""

    master: int
    processes: Dict[int, ProcessMemory] = field(default_factory=dict)
    total: Optional[ProcessMemory] = None

    def sample(self) -> None:
        total = 0
        for pid in group_members(self.master):
            rss = rss_bytes(pid)
            if rss is None:
                continue
            total += rss
            seen = self.processes.get(pid)
            if seen is None:
                self.processes[pid] = ProcessMemory(rss, rss, rss)
            else:
                seen.peak, seen.last = max(seen.peak, rss), rss
        if self.total is None:
            self.total = ProcessMemory(total, total, total)
        else:
            self.total.peak, self.total.last = max(self.total.peak, total), total


async def sample_until(runners: List[RunnerMemory], done: asyncio.Event,
                       interval: float = 0.5) -> None:
    """Sample every runner every `interval` seconds until `done`, and once more after."""
    while not done.is_set():
        for runner in runners:
            runner.sample()
        try:
            await asyncio.wait_for(done.wait(), interval)
        except asyncio.TimeoutError:
            continue
    for runner in runners:
        runner.sample()
