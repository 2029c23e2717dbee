"""The SQL backend's statements, as SQLite and PostgreSQL plan them: a page at any depth, of
one status or before a cursor, reads its read index from the cursor on, with no sort; each
form of delete picks its batch through an index. The statements are the ones the store runs
(caught on their way to the driver), explained on the store's own database."""
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, List, Tuple

import peewee
import pytest
from playhouse.db_url import connect as connect_url

from connect_mongodb_example.storage.base import EventFilter, PageCursor
from connect_mongodb_example.storage.sql import SqlEventStore, SqlSettings
from connect_mongodb_example.storage.sql_schema import AGE_INDEX, EVENTS_TABLE
from tests.support.records import purchase_record

MINE = 'EIN-1111-1111-1111'
THEIRS = 'EIN-2222-2222-2222'
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
STATUSES = ('pending', 'approved', 'failed')
READ_INDEX = 'connect_events_installation_received_idx'
STATUS_INDEX = 'connect_events_installation_status_received_idx'
EVENTS = 150


@pytest.fixture(params=['sqlite', pytest.param('postgresql', marks=pytest.mark.postgres)])
def database_url(request):
    return request.getfixturevalue('sqlite_url' if request.param == 'sqlite' else 'postgres_url')


@pytest.fixture
async def store(database_url, purchase_request):
    """Mine and theirs, events of every status, one a second; statistics gathered."""
    store = SqlEventStore(SqlSettings(database_url, pool_size=1))
    for n in range(EVENTS):
        for installation_id in (MINE, THEIRS):
            await store.save(purchase_record(
                purchase_request(f'PR-{n:04d}', status=STATUSES[n % len(STATUSES)]),
                installation={'id': installation_id}, received_at=T0 + timedelta(seconds=n)))
    database = connect_url(database_url)
    with database.connection_context():
        database.execute_sql(f'ANALYZE {EVENTS_TABLE}')
    database.close()
    yield store
    await store.close()


async def statements(
    call: Callable[[], Awaitable[Any]], monkeypatch, starting: str,
) -> List[Tuple[str, Any]]:
    """The statements starting with `starting` that `call` sends, with their parameters."""
    sent = []
    original = peewee.Database.execute_sql

    def spy(self, sql_text, params=None, *args, **kwargs):
        sent.append((sql_text, params))
        return original(self, sql_text, params, *args, **kwargs)

    monkeypatch.setattr(peewee.Database, 'execute_sql', spy)
    try:
        await call()
    finally:
        monkeypatch.undo()
    return [(text, params) for text, params in sent if text.startswith(starting)]


def plan(url: str, statement: str, params: Any) -> str:
    """How the database would run `statement`, one step a line."""
    database = connect_url(url)
    with database.connection_context():
        if url.startswith('sqlite'):
            rows = database.execute_sql(f'EXPLAIN QUERY PLAN {statement}', params).fetchall()
            steps = [row[-1] for row in rows]
        else:
            # A table this small is read whole (or through a bitmap, then sorted) whatever
            # the indexes; a big one's page is read along an index. Which index, how far it
            # is bounded (Index Cond) and whether a sort follows are what is checked.
            database.execute_sql('SET enable_seqscan = off')
            database.execute_sql('SET enable_bitmapscan = off')
            steps = [row[0] for row in database.execute_sql(f'EXPLAIN {statement}', params)]
    database.close()
    return '\n'.join(steps)


def assert_reads_index_without_sorting(steps: str, index: str, url: str) -> None:
    if url.startswith('sqlite'):
        # e.g. SEARCH connect_events USING INDEX ..._received_idx (installation_id=? AND
        # (received_at,key)<(?,?)): the cursor bounds the index search itself.
        assert f'USING INDEX {index} (installation_id=? AND ' in steps, steps
        assert '(received_at,key)' in steps, steps
        assert 'TEMP B-TREE' not in steps, steps
    else:
        assert f'Index Scan using {index}' in steps or (
            f'Index Scan Backward using {index}' in steps), steps
        # The cursor bounds the index scan: a condition of the scan, not a filter after it.
        [condition] = [line for line in steps.splitlines() if 'Index Cond: ' in line]
        assert 'ROW(received_at, ' in condition, steps
        assert 'Sort' not in steps, steps


async def test_a_deep_cursor_page_reads_the_index_from_the_cursor(store, database_url,
                                                                 monkeypatch):
    where = EventFilter(MINE)
    first = await store.list_events(where, limit=50)
    deep = PageCursor.of(first[-1])
    [(select, params)] = await statements(
        lambda: store.list_events(where, limit=20, after=deep), monkeypatch, 'SELECT')
    assert_reads_index_without_sorting(plan(database_url, select, params), READ_INDEX,
                                       database_url)
    page = await store.list_events(where, limit=20, after=deep)
    assert [r.received_at for r in page] == [
        T0 + timedelta(seconds=n) for n in range(EVENTS - 51, EVENTS - 71, -1)]


async def test_a_page_of_one_status_reads_the_status_index(store, database_url, monkeypatch):
    where = EventFilter(MINE, status='approved')
    deep = PageCursor(T0 + timedelta(seconds=100), 'z')
    [(select, params)] = await statements(
        lambda: store.list_events(where, limit=20, after=deep), monkeypatch, 'SELECT')
    assert_reads_index_without_sorting(plan(database_url, select, params), STATUS_INDEX,
                                       database_url)


@pytest.mark.parametrize('status', [None, 'pending'])
async def test_a_page_before_a_cursor_reads_the_index_backwards(store, database_url,
                                                               monkeypatch, status):
    where = EventFilter(MINE, status=status)
    cursor = PageCursor(T0 + timedelta(seconds=30), '')
    [(select, params)] = await statements(
        lambda: store.list_events(where, limit=20, before=cursor), monkeypatch, 'SELECT')
    assert_reads_index_without_sorting(plan(database_url, select, params),
                                       STATUS_INDEX if status else READ_INDEX, database_url)


@pytest.mark.parametrize(('target', 'index'), [
    ({'installation_id': MINE}, READ_INDEX),
    ({'installation_id': MINE, 'received_before': T0 + timedelta(seconds=50)}, READ_INDEX),
    ({'received_before': T0 + timedelta(seconds=50)}, AGE_INDEX),
])
async def test_each_delete_picks_its_batch_through_an_index(store, database_url, monkeypatch,
                                                           target, index):
    [(delete, params), *_] = await statements(
        lambda: store.delete_events(limit=10, **target), monkeypatch, 'DELETE')
    steps = plan(database_url, delete, params)
    if database_url.startswith('sqlite'):
        assert f'USING COVERING INDEX {index} (' in steps, steps
        assert 'TEMP B-TREE FOR ORDER BY' not in steps, steps
    else:
        assert f'using {index} on {EVENTS_TABLE}' in steps, steps
        assert 'Sort Key: ' not in steps, steps


async def test_no_page_reads_the_index_of_deletes_by_age(store, database_url, monkeypatch):
    """Through it PostgreSQL would scan every other installation's newer events to find a
    page of one whose events are old (see sql_schema.AGE_INDEX_PREDICATE)."""
    for where in (EventFilter(MINE), EventFilter(MINE, status='failed')):
        [(select, params)] = await statements(
            lambda: store.list_events(where, limit=20), monkeypatch, 'SELECT')  # noqa: B023
        assert AGE_INDEX not in plan(database_url, select, params)
