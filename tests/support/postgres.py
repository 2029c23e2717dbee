"""PostgreSQL for the tests: the local server when there is one, else a throwaway one.

The throwaway server is started from the installed binaries (initdb, pg_ctl). PostgreSQL
refuses to run as root, so as root it runs as the `postgres` system user.
"""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import closing, suppress
from typing import List, Optional, Sequence, Union
from urllib.parse import quote

import psycopg2
from psycopg2 import sql

LOCAL_SERVER_URL = 'postgresql://postgres@127.0.0.1:5432/postgres'


def server_answers(url: str) -> bool:
    try:
        with closing(psycopg2.connect(url, connect_timeout=2)):
            return True
    except psycopg2.Error:
        return False


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _binary(name: str) -> str:
    found = sorted(glob.glob(f'/usr/lib/postgresql/*/bin/{name}')) or [shutil.which(name)]
    if not found[-1]:
        raise RuntimeError(f'{name} not found: install the PostgreSQL server binaries')
    return found[-1]


class ThrowawayPostgres:
    """A PostgreSQL server in a temporary directory that a test may stop and start again."""

    def __init__(self, port: Optional[int] = None, password: Optional[str] = None):
        """With a `password`, the server checks it (scram-sha-256) for every connection,
        as real deployments do; without one it trusts every connection."""
        self.port = port or free_port()
        self.password = password
        self.directory = tempfile.mkdtemp(prefix='pg-throwaway-')
        self.data = os.path.join(self.directory, 'data')
        self._as_postgres: List[str] = []
        if os.geteuid() == 0:
            self._as_postgres = ['runuser', '-u', 'postgres', '--']
            shutil.chown(self.directory, 'postgres', 'postgres')
        auth = ['-A', 'trust']
        if password is not None:
            password_file = os.path.join(self.directory, 'password')
            with open(password_file, 'w') as file:
                file.write(password + '\n')
            if self._as_postgres:
                shutil.chown(password_file, 'postgres', 'postgres')
            auth = ['--auth=scram-sha-256', f'--pwfile={password_file}']
        try:
            self._run(_binary('initdb'), '-D', self.data, *auth, '-U', 'postgres',
                      '--no-sync', '-E', 'UTF8')
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def url(self, database: str = 'postgres') -> str:
        if self.password is None:
            return f'postgresql://postgres@127.0.0.1:{self.port}/{database}'
        return (f'postgresql://postgres:{quote(self.password, safe="")}@127.0.0.1:{self.port}/'
                f'{database}')

    def start(self) -> None:
        options = (f'-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 '
                   '-c fsync=off -c max_connections=200')
        self._run(_binary('pg_ctl'), '-D', self.data, '-o', options, '-w', '-t', '60',
                  '-l', os.path.join(self.directory, 'server.log'), 'start')

    def stop(self, mode: str = 'fast') -> None:
        self._run(_binary('pg_ctl'), '-D', self.data, '-m', mode, '-w', 'stop')

    def destroy(self) -> None:
        with suppress(subprocess.CalledProcessError):
            self.stop('immediate')
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as_postgres, *command], check=True, capture_output=True,
                       timeout=120)


def create_database(server_url: str) -> str:
    """A new empty database on the server; returns its URL."""
    name = f'test_{uuid.uuid4().hex[:12]}'
    run_sql(server_url, sql.SQL('CREATE DATABASE {}').format(sql.Identifier(name)))
    return server_url.rsplit('/', 1)[0] + '/' + name


def drop_database(server_url: str, database_url: str) -> None:
    name = database_url.rsplit('/', 1)[1]
    run_sql(server_url, sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(
        sql.Identifier(name)))


def run_sql(server_url: str, statement: Union[str, sql.Composed], params: Sequence = ()) -> list:
    """Run one statement in autocommit mode; the rows it returns, if any."""
    connection = psycopg2.connect(server_url, connect_timeout=5)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement, params or None)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()
