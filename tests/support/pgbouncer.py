"""PgBouncer for the tests: a throwaway pooler in transaction mode in front of the test
PostgreSQL, as deployments put one in front of a database that many runners share.

It listens on a free port of 127.0.0.1, keeps its configuration and log in a temporary
directory, and checks the password of every client (SCRAM, from its own user list) as a
deployed pooler does; it logs in to PostgreSQL as the same user, with that password when the
server asks for one (the local test server trusts loopback). Every database of the server is
reachable through it under its own name. PgBouncer refuses to run as root: as root it
switches to the `postgres` system user.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import closing
from typing import Iterator, Optional
from urllib.parse import quote, unquote, urlsplit

import pytest

from tests.support.postgres import free_port

START_TIMEOUT_SECONDS = 30
#: The clients' password when the server's URL has none (the server then trusts loopback).
DEFAULT_PASSWORD = 'p@ss:bouncer/%'  # a throwaway pooler's; its characters need URL quoting


def binary() -> Optional[str]:
    """The pgbouncer program (Debian installs it in /usr/sbin), or None."""
    return shutil.which('pgbouncer') or next(
        (path for path in ('/usr/sbin/pgbouncer', '/usr/local/sbin/pgbouncer')
         if os.access(path, os.X_OK)), None)


class ThrowawayPgBouncer:
    """PgBouncer in transaction pool mode in front of the server of `server_url`."""

    def __init__(self, server_url: str, *, default_pool_size: int = 20):
        program = binary()
        if program is None:
            raise RuntimeError('pgbouncer not found: install it (apt-get install pgbouncer)')
        server = urlsplit(server_url)
        self.user = unquote(server.username or 'postgres')
        self.password = unquote(server.password) if server.password else DEFAULT_PASSWORD
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix='pgbouncer-throwaway-')
        self.log_path = os.path.join(self.directory, 'pgbouncer.log')
        config = os.path.join(self.directory, 'pgbouncer.ini')
        users = os.path.join(self.directory, 'userlist.txt')
        with open(users, 'w') as file:
            # A plain password: PgBouncer checks clients' SCRAM proofs with it and can log in
            # to the server with it.
            file.write(f'"{_quoted(self.user)}" "{_quoted(self.password)}"\n')
        with open(config, 'w') as file:
            file.write(
                '[databases]\n'
                # Any database name: the server's database of the same name.
                f'* = host={server.hostname or "127.0.0.1"} port={server.port or 5432}\n'
                '[pgbouncer]\n'
                'listen_addr = 127.0.0.1\n'
                f'listen_port = {self.port}\n'
                'unix_socket_dir =\n'
                'pool_mode = transaction\n'
                'auth_type = scram-sha-256\n'
                f'auth_file = {users}\n'
                f'logfile = {self.log_path}\n'
                'max_client_conn = 1000\n'
                f'default_pool_size = {default_pool_size}\n'
                f'admin_users = {self.user}\n',
            )
        self._command = [program, config]
        if os.geteuid() == 0:
            self._command[1:1] = ['-u', 'postgres']
            for path in (self.directory, users, config):
                shutil.chown(path, 'postgres', 'postgres')
        self._process: Optional[subprocess.Popen] = None

    def url(self, database_url: str) -> str:
        """The URL of the database of `database_url` (on the server), through the pooler."""
        database = urlsplit(database_url).path.lstrip('/') or 'postgres'
        return (f'postgresql://{quote(self.user, safe="")}:{quote(self.password, safe="")}'
                f'@127.0.0.1:{self.port}/{database}')

    def start(self) -> None:
        self._process = subprocess.Popen(
            self._command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f'pgbouncer exited with code {self._process.returncode}: '
                                   f'{self.log_tail()}')
            try:
                with closing(socket.create_connection(('127.0.0.1', self.port), timeout=1)):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f'pgbouncer did not listen within {START_TIMEOUT_SECONDS}s: '
                           f'{self.log_tail()}')

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()  # SIGTERM: immediate shutdown
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, errors='replace') as log:
                return ''.join(log.readlines()[-lines:])
        except OSError:
            return '(no log)'


def _quoted(value: str) -> str:
    """A value inside double quotes of PgBouncer's user list (a quote is doubled)."""
    return value.replace('"', '""')


def session_pooler(server_url: str) -> Iterator[ThrowawayPgBouncer]:
    """A running pooler in front of `server_url` for the test session; skips without one."""
    if binary() is None:
        pytest.skip('PgBouncer tests not run: pgbouncer is not installed '
                    '(apt-get install pgbouncer; .ci/run installs it)')
    pooler = ThrowawayPgBouncer(server_url)
    try:
        pooler.start()
        yield pooler
    finally:
        pooler.destroy()
