"""Fixtures of the reliability tests: a PostgreSQL server they may stop, and a short summary
of the counts at the end of the run."""
from typing import Any, AsyncIterator, Callable, Iterator, List

import pytest

from connect_mongodb_example.storage.registry import close_all
from tests.reliability.helpers import DATA_API_KEY
from tests.storage.mongo_fakes import FakeMongo
from tests.support.postgres import (
    ThrowawayPostgres,
    create_database,
    drop_database,
    server_answers,
)

# Lines collected by the `report` fixture, printed by pytest_terminal_summary.
_SUMMARY: List[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if _SUMMARY:
        terminalreporter.section('reliability counts')
        for line in _SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture
def report(request, record_property) -> Callable[..., None]:
    """`report(delivered=.., stored=..)`: one summary line per test, also a junit property."""

    def add(**counts: Any) -> None:
        for name, value in counts.items():
            record_property(name, value)
        text = ' '.join(f'{name}={value}' for name, value in counts.items())
        _SUMMARY.append(f'{request.node.nodeid}: {text}')

    return add


@pytest.fixture(scope='module')
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A private PostgreSQL server that a test may stop and start (never the shared one)."""
    server = None
    try:
        server = ThrowawayPostgres()
        server.start()
    except Exception as error:  # noqa: BLE001 - reported as the skip reason
        if server is not None:
            server.destroy()  # its data directory, and a server that started too slowly
        pytest.skip(f'a throwaway PostgreSQL server could not start: {error}')
    yield server
    server.destroy()


@pytest.fixture
def throwaway_database(throwaway_postgres) -> Iterator[str]:
    """A fresh database on the throwaway server; the server is running again afterwards."""
    url = create_database(throwaway_postgres.url())
    yield url
    if not server_answers(throwaway_postgres.url()):
        throwaway_postgres.start()
    drop_database(throwaway_postgres.url(), url)


@pytest.fixture(params=['sqlite', pytest.param('postgresql', marks=pytest.mark.postgres)])
def database_url(request) -> str:
    """Each test using it runs on SQLite and on a fresh PostgreSQL database."""
    return request.getfixturevalue('sqlite_url' if request.param == 'sqlite' else 'postgres_url')


@pytest.fixture
async def dataapi_server() -> AsyncIterator[Any]:
    """The local Data-API-compatible server (localdev/dataapi_server.py), in memory."""
    from localdev.dataapi_server import DataApiServer

    server = DataApiServer(api_key=DATA_API_KEY)
    await server.start()
    yield server
    # Clients first: the server's shutdown waits for connections they keep open.
    await close_all()
    await server.stop()


@pytest.fixture
def fake_mongo(monkeypatch) -> FakeMongo:
    """The mongodb backend's clients replaced by mongomock-motor on one in-memory server."""
    return FakeMongo().install(monkeypatch)
