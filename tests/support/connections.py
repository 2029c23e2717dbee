"""Counting the connections a process really holds open, to prove that pools get closed."""
import os
import time
from typing import Callable

TCP_ESTABLISHED = '01'


def established_to(port: int) -> int:
    """Established TCP connections to `port` (client ends: the remote port is `port`)."""
    count = 0
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    if int(fields[2].rsplit(':', 1)[1], 16) == port and fields[3] == '01':
                        count += 1
        except FileNotFoundError:
            continue
    return count


def open_files(path: str) -> int:
    """Descriptors of this process open on the file `path` (a SQLite database's connections)."""
    count = 0
    for fd in os.listdir('/proc/self/fd'):
        try:
            count += os.readlink(f'/proc/self/fd/{fd}') == path
        except OSError:  # closed meanwhile
            continue
    return count


def settled(measure: Callable[[], int], limit: int, timeout: float = 10) -> int:
    """`measure()` once it is at most `limit` (a server notices a closed socket a moment
    later), or its last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    value = measure()
    while value > limit and time.monotonic() < deadline:
        time.sleep(0.05)
        value = measure()
    return value
