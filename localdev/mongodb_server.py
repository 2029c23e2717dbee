"""A throwaway MongoDB-compatible server for the tests and the demo: SecantusDB.

SecantusDB (PyPI `secantusdb`, GPL-2.0, a development dependency only, never shipped) speaks
MongoDB's wire protocol on top of WiredTiger, so the real drivers (PyMongo, Motor) talk to
it as to a MongoDB server. It checks passwords (SCRAM-SHA-256) and roles when started with
--auth; users are created once without --auth, then the server restarts with it.
"""
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing, contextmanager
from typing import Iterator, List, Optional, Sequence
from urllib.parse import quote

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from connect_mongodb_example.errors import ConfigurationError

ADMIN_USER = 'admin'
# Passwords hold what URL quoting must protect, so that every client proves it quotes them.
ADMIN_PASSWORD = 'adm1n:p@ss/%'  # noqa: S105 - a throwaway server's
APP_USER = 'events-app'
APP_PASSWORD = 'ev3nts:p@ss/%40'  # noqa: S105 - a throwaway server's
#: The database the application user may write (readWrite); other databases refuse it.
APP_DATABASE = 'connect_events'
START_TIMEOUT_SECONDS = 60


def available() -> Optional[str]:
    """None when SecantusDB can run here, else why not."""
    if sys.version_info < (3, 10):
        return 'SecantusDB needs Python 3.10 or later (it is not installed on 3.9)'
    try:
        import secantus  # noqa: F401 - only checking that it is installed
    except ImportError:
        return 'SecantusDB is not installed (make install installs it)'
    return None


def _free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class ThrowawayMongo:
    """A SecantusDB server on a free port with its data in a temporary directory."""

    def __init__(self, databases: Sequence[str] = (APP_DATABASE,)):
        self.port = _free_port()
        self.directory = tempfile.mkdtemp(prefix='mongo-throwaway-')
        self.databases = list(databases)
        self._process: Optional[subprocess.Popen] = None

    def uri(self, user: str = APP_USER, password: str = APP_PASSWORD) -> str:
        """A connection string for `user`; users are defined in the admin database."""
        return (f'mongodb://{quote(user, safe="")}:{quote(password, safe="")}'
                f'@127.0.0.1:{self.port}/?authSource=admin')

    def admin_uri(self) -> str:
        return self.uri(ADMIN_USER, ADMIN_PASSWORD)

    def start(self) -> None:
        """Start with authentication on: create the users first, then restart with --auth."""
        try:
            self._launch(auth=False)
            with closing(self._client(f'mongodb://127.0.0.1:{self.port}/')) as client:
                client.admin.command('createUser', ADMIN_USER, pwd=ADMIN_PASSWORD,
                                     roles=[{'role': 'root', 'db': 'admin'}])
                client.admin.command('createUser', APP_USER, pwd=APP_PASSWORD, roles=[
                    {'role': 'readWrite', 'db': name} for name in self.databases])
            self._terminate()
            self._launch(auth=True)
            with closing(self._client(self.admin_uri())) as client:
                client.admin.command('ping')
        except BaseException:
            self.destroy()
            raise

    def destroy(self) -> None:
        self._terminate()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _launch(self, *, auth: bool) -> None:
        command = [sys.executable, '-m', 'secantus', '--host', '127.0.0.1',
                   '--port', str(self.port), '--storage-path', f'{self.directory}/data',
                   '--log-level', 'ERROR', '--config', self._empty_config()]
        log = open(f'{self.directory}/server.log', 'ab')  # noqa: SIM115 - the child keeps it
        with log:
            self._process = subprocess.Popen(  # noqa: S603 - our own fixed command
                [*command, *(['--auth'] if auth else [])],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self._wait_until_listening()

    def _empty_config(self) -> str:
        """An empty configuration file: without one, a secantusd.toml found in the working
        directory or the home directory would apply."""
        path = f'{self.directory}/secantusd.toml'
        with open(path, 'w'):
            return path

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                with open(f'{self.directory}/server.log', encoding='utf-8',
                          errors='replace') as log:
                    raise RuntimeError(f'SecantusDB exited with {self._process.returncode}: '
                                       f'{log.read()[-2000:]}')
            with closing(socket.socket()) as probe:
                probe.settimeout(1)
                if probe.connect_ex(('127.0.0.1', self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f'SecantusDB did not listen on port {self.port} within '
                           f'{START_TIMEOUT_SECONDS}s')

    def _client(self, uri: str) -> MongoClient:
        client = MongoClient(uri, serverSelectionTimeoutMS=START_TIMEOUT_SECONDS * 1000)
        try:
            client.admin.command('ping')
        except PyMongoError:
            client.close()
            raise
        return client

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def for_demo(enabled: bool, assignments: List[str]) -> Iterator[None]:
    """`make demo` with --mongodb-local: a throwaway server for the run, its MONGODB_URI
    added to the --set assignments (and STORAGE_BACKENDS=sql,mongodb unless they set it).
    Its data is gone when the demo ends."""
    if not enabled:
        yield
        return
    reason = available()
    if reason:
        raise ConfigurationError('--mongodb-local', reason)
    print('Starting a throwaway MongoDB-compatible server (SecantusDB) ...')
    server = ThrowawayMongo()
    server.start()
    try:
        assignments.extend(demo_assignments(server.uri(), assignments))
        yield
    finally:
        server.destroy()


def demo_assignments(uri: str, assignments: List[str]) -> List[str]:
    """The --set assignments --mongodb-local adds to the user's."""
    added = [f'MONGODB_URI={uri}']
    if not any(item.partition('=')[0].strip() == 'STORAGE_BACKENDS' for item in assignments):
        added.append('STORAGE_BACKENDS=sql,mongodb')
    return added
