"""The benchmark's PostgreSQL database: a throwaway server never outlives a failure."""
from typing import List

import pytest

from localdev.bench import sql as bench_sql
from tests.support import postgres


class FakeThrowaway:
    """Records what is done to it; `start` or the database creation fails as told."""

    made: List['FakeThrowaway'] = []

    def __init__(self, fail_start: bool):
        self.fail_start = fail_start
        self.destroyed = False
        FakeThrowaway.made.append(self)

    def start(self) -> None:
        if self.fail_start:
            raise RuntimeError('pg_ctl: could not start server')

    def url(self) -> str:
        return 'postgresql://postgres@127.0.0.1:1/postgres'

    def destroy(self) -> None:
        self.destroyed = True


@pytest.fixture
def no_server(monkeypatch):
    """No PostgreSQL answers, so `postgres_database` makes a (fake) throwaway one."""
    monkeypatch.delenv('BENCH_POSTGRES_URL', raising=False)
    monkeypatch.setattr(postgres, 'server_answers', lambda url: False)
    FakeThrowaway.made = []

    def use(fail_start: bool = False, fail_create: bool = False) -> None:
        monkeypatch.setattr(postgres, 'ThrowawayPostgres', lambda: FakeThrowaway(fail_start))

        def create_database(server_url: str) -> str:
            if fail_create:
                raise RuntimeError('CREATE DATABASE failed')
            return f'{server_url[:-len("postgres")]}bench'

        monkeypatch.setattr(postgres, 'create_database', create_database)
        monkeypatch.setattr(postgres, 'drop_database', lambda server_url, url: None)

    return use


@pytest.mark.parametrize(('fail_start', 'fail_create', 'problem'), [
    (True, False, 'could not start'),
    (False, True, 'CREATE DATABASE failed'),
])
def test_a_throwaway_server_is_destroyed_when_it_cannot_be_used(
    no_server, fail_start, fail_create, problem,
):
    no_server(fail_start=fail_start, fail_create=fail_create)

    with pytest.raises(RuntimeError, match=problem), bench_sql.postgres_database():
        pass  # pragma: no cover - never reached

    [server] = FakeThrowaway.made
    assert server.destroyed


def test_a_throwaway_server_is_destroyed_after_use(no_server):
    no_server()

    with bench_sql.postgres_database() as (url, where):
        [server] = FakeThrowaway.made
        assert url == 'postgresql://postgres@127.0.0.1:1/bench'
        assert 'throwaway' in where
        assert not server.destroyed

    assert server.destroyed
