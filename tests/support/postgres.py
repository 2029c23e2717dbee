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
from typing import List, Optional

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

    def __init__(self, port: Optional[int] = None):
        self.port = port or free_port()
        self.directory = tempfile.mkdtemp(prefix='pg-throwaway-')
        self.data = os.path.join(self.directory, 'data')
        self._as_postgres: List[str] = []
        if os.geteuid() == 0:
            self._as_postgres = ['runuser', '-u', 'postgres', '--']
            shutil.chown(self.directory, 'postgres', 'postgres')
        try:
            self._run(_binary('initdb'), '-D', self.data, '-A', 'trust', '-U', 'postgres',
                      '--no-sync', '-E', 'UTF8')
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def url(self, database: str = 'postgres') -> str:
        return f'postgresql://postgres@127.0.0.1:{self.port}/{database}'

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
    _admin(server_url, sql.SQL('CREATE DATABASE {}').format(sql.Identifier(name)))
    return server_url.rsplit('/', 1)[0] + '/' + name


def drop_database(server_url: str, database_url: str) -> None:
    name = database_url.rsplit('/', 1)[1]
    _admin(server_url, sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(
        sql.Identifier(name)))


def _admin(server_url: str, statement: sql.Composed) -> None:
    connection = psycopg2.connect(server_url, connect_timeout=5)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()
