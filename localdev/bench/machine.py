"""What the benchmark ran on, in one line for the README: CPU, cores, memory, versions."""
import os
import platform
import sqlite3
from importlib import metadata
from typing import Dict, Optional

PACKAGES = ('peewee', 'psycopg2-binary', 'httpx', 'aiohttp', 'mongomock',
            'connect-extension-runner')


def cpu_model() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> Optional[float]:
    try:
        with open('/proc/meminfo', encoding='utf-8') as meminfo:
            for line in meminfo:
                if line.startswith('MemTotal:'):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def versions(extra: Dict[str, str]) -> Dict[str, str]:
    found = {'Python': platform.python_version(), 'SQLite': sqlite3.sqlite_version}
    found.update(extra)
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def describe(extra: Optional[Dict[str, str]] = None) -> str:
    """`AMD EPYC, 2 cores, 7.8 GiB, Linux 6.1; Python 3.11.7, SQLite 3.40.1, ...`"""
    memory = memory_gib()
    machine = [cpu_model(), f'{usable_cores()} cores']
    if memory:
        machine.append(f'{memory:.1f} GiB')
    machine.append(f'{platform.system()} {platform.release()}')
    software = ', '.join(f'{name} {version}' for name, version in versions(extra or {}).items())
    return f'{", ".join(machine)}; {software}'
