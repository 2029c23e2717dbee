"""PostgreSQL for the tests: the local server when there is one, else a throwaway one.

The throwaway server is started from the installed binaries (initdb, pg_ctl). PostgreSQL
refuses to run as root, so as root it runs as the `postgres` system user.
"""
import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import closing, suppress
from typing import List, Optional, Sequence, Tuple, Union
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


#: What a database holds besides its tables: its schemas with their owners and grants, and
#: what lives outside any schema. A database is reused only when this is what a new one has.
STATE_QUERIES = (
    'SELECT nspname, nspowner::regrole::text, nspacl::text FROM pg_namespace ORDER BY 1',
    'SELECT extname FROM pg_extension ORDER BY 1',
    'SELECT count(*) FROM pg_largeobject_metadata',
    'SELECT count(*) FROM pg_event_trigger',
    'SELECT count(*) FROM pg_publication',
    'SELECT count(*) FROM pg_db_role_setting WHERE setdatabase = '
    '(SELECT oid FROM pg_database WHERE datname = current_database())',
)

#: The letters of a schema's grants in `aclitem` text.
PRIVILEGES = {'U': 'USAGE', 'C': 'CREATE'}


def database_state(url: str) -> Tuple:
    return tuple(tuple(run_sql(url, query)) for query in STATE_QUERIES)


class DatabasePool:
    """Empty databases for the tests of one process, reused: a used one is emptied and
    renamed (about 70 ms) instead of dropped and created again (about 220 ms: CREATE DATABASE
    copies a template and waits for the disk, DROP DATABASE too).

    A used database is reused only when, emptied, it is exactly what a new one is
    (`database_state`); renaming it first ends every connection to it, so that nothing a
    test left running can reach the next test's database under the old name. Anything that
    fails on the way drops it instead."""

    def __init__(self, server_url: str):
        self.server_url = server_url
        self._free: List[str] = []
        self._new_state: Optional[Tuple] = None
        self._reset: Optional[sql.Composed] = None

    def take(self) -> str:
        """The URL of an empty database."""
        if self._free:
            return self._url(self._free.pop())
        url = create_database(self.server_url)
        if self._new_state is None:
            self._new_state = database_state(url)
            self._reset = _reset_statement(self._new_state)
        return url

    def give_back(self, url: str) -> None:
        name = url.rsplit('/', 1)[1]
        try:
            self._free.append(self._emptied(name))
        except (psycopg2.Error, ValueError):
            drop_database(self.server_url, url)

    def close(self) -> None:
        while self._free:
            drop_database(self.server_url, self._url(self._free.pop()))

    def _url(self, name: str) -> str:
        return self.server_url.rsplit('/', 1)[0] + '/' + name

    def _emptied(self, name: str) -> str:
        """Empties database `name` and renames it; returns the new name."""
        self._end_connections(name)
        url = self._url(name)
        run_sql(url, self._reset)
        if database_state(url) != self._new_state:
            raise ValueError(f'{name} does not empty to a new database')
        renamed = f'test_{uuid.uuid4().hex[:12]}'
        self._end_connections(name)
        run_sql(self.server_url, sql.SQL('ALTER DATABASE {} RENAME TO {}').format(
            sql.Identifier(name), sql.Identifier(renamed)))
        return renamed

    def _end_connections(self, name: str) -> None:
        run_sql(self.server_url, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                                 'WHERE datname = %s AND pid <> pg_backend_pid()', (name,))


def _reset_statement(new_state: Tuple) -> sql.Composed:
    """What empties a database into `new_state`: its public schema dropped with all it
    holds, then made again with the owner and the grants to PUBLIC a new one has."""
    [(owner, acl)] = [row[1:] for row in new_state[0] if row[0] == 'public']
    grants = re.search(r'(?:^|[{,])=([A-Za-z]*)/', acl or '')
    public = [PRIVILEGES[letter] for letter in (grants[1] if grants else '')]
    return sql.SQL('; ').join([
        sql.SQL('DROP SCHEMA public CASCADE'),
        sql.SQL('CREATE SCHEMA public AUTHORIZATION {}').format(sql.Identifier(owner)),
        *([sql.SQL('GRANT {} ON SCHEMA public TO PUBLIC').format(
            sql.SQL(', ').join(map(sql.SQL, public)))] if public else []),
    ])
