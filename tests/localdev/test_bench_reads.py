"""The read benchmark at a small size: what it loads is what the extension stores, the
pages it times are the right events (it checks each before timing it), and its report has
a row per call on every backend. No timing thresholds."""
import re
from contextlib import closing

import httpx
import pytest
from pymongo import MongoClient

from connect_mongodb_example.event_record import idempotency_key
from connect_mongodb_example.storage.base import EventFilter
from connect_mongodb_example.storage.sql import SqlEventStore, SqlSettings
from localdev.bench import reads as bench_reads
from localdev.bench import reads_data, reads_mongo, reads_sql
from localdev.mongodb_server import APP_DATABASE, available
from tests.storage.mongo_targets import counted, new_collection, new_store, stored

ROW = re.compile(r'^(\w+)\s+(.+?)\s+(\d+)\s+([\d.]+)\s+([\d.]+) (PASS|FAIL)$')
CASES = ['page 1', 'page 3 (cursor)', 'page 12 (cursor)', 'offset 20',
         'page 1, approved', 'page 3 (cursor), approved', 'offset 20, approved', 'timeline']


@pytest.fixture(params=['sqlite', pytest.param('postgresql', marks=pytest.mark.postgres)])
def database_url(request):
    return request.getfixturevalue('sqlite_url' if request.param == 'sqlite' else 'postgres_url')


async def test_sql_events_read_back_as_the_extension_stores_them(database_url):
    reads_sql.first_schema_version(database_url)
    load = (reads_sql.load_sqlite if database_url.startswith('sqlite')
            else reads_sql.load_postgres)
    load(database_url, 301)
    await reads_sql.migrate(database_url)
    store = SqlEventStore(SqlSettings(database_url, pool_size=2))
    try:
        target = EventFilter(reads_data.TARGET)
        assert await store.count_events(target) == 301
        others = [await store.count_events(EventFilter(f'EIN-0000-1000-{n:04d}'))
                  for n in range(reads_data.OTHERS)]
        assert sum(others) == reads_data.total_rows(301) - 301
        assert all(others)
        page = await store.list_events(target, limit=50, offset=50)
        approved = await store.list_events(EventFilter(reads_data.TARGET, 'approved'),
                                           limit=10, offset=10)
        [full] = await store.find(page[0].request_id, installation_id=reads_data.TARGET)
    finally:
        await store.close()
    # The data set's own account of the pages is the database's.
    assert [record.request_id for record in page] == reads_data.expected_page(301, None, 50, 50)
    assert [record.request_id for record in approved] == reads_data.expected_page(
        301, 'approved', 10, 10)
    assert full.key == idempotency_key(full.request_id, full.status, full.updated,
                                       reads_data.TARGET)
    assert full.key == reads_data.key_of(int(full.request_id[3:15]))
    assert full.request['id'] == full.request_id
    assert full.request['asset']['id'].startswith('AS-')


@pytest.mark.mongodb
async def test_mongo_documents_read_back_and_count_as_the_extension_keeps_them(
        mongodb_server):
    collection = new_collection()
    try:
        reads_mongo.load(mongodb_server.uri, 301, collection)
        await reads_mongo.migrate(mongodb_server.uri, collection)
        store = new_store(reads_mongo.driver_config(mongodb_server.uri, collection))
        try:
            target = EventFilter(reads_data.TARGET)
            assert await store.count_events(target) == 301
            page = await store.list_events(target, limit=50, offset=50)
            [full] = await store.find(page[0].request_id, installation_id=reads_data.TARGET)
            # A save of the storage's own adds to the counts the migration made.
            assert await store.save(full) == full.delivery_count + 1
        finally:
            await store.close()
        with closing(MongoClient(mongodb_server.admin_uri)) as client:
            database = client[APP_DATABASE]
            assert counted(database, collection) == stored(database, collection)
            assert len(counted(database, collection)) > reads_data.OTHERS
            assert database[collection].count_documents({'counting': {'$exists': True}}) == 0
    finally:
        with closing(MongoClient(mongodb_server.admin_uri)) as client:
            for name in (collection, collection + '_counts', collection + '_schema',
                         collection + '_installations'):
                client[APP_DATABASE].drop_collection(name)
    assert [record.request_id for record in page] == reads_data.expected_page(301, None, 50, 50)
    assert full.key == reads_data.key_of(int(full.request_id[3:15]))
    assert full.request['id'] == full.request_id
    assert full.delivery_count in (1, 2)


def test_a_wrong_page_fails_the_benchmark():
    case = bench_reads.Case('page 3 (cursor)', None, 10, 'cursor')
    right = reads_data.expected_page(300, None, 10, 5)
    response = httpx.Response(200, json=[{'request_id': rid} for rid in right])
    bench_reads.check(case, response, 300, 5)
    shifted = reads_data.expected_page(300, None, 11, 5)
    with pytest.raises(RuntimeError, match='page 3'):
        bench_reads.check(case, httpx.Response(200, json=[{'request_id': rid}
                                                          for rid in shifted]), 300, 5)


BACKENDS = ['sqlite', pytest.param('postgresql', marks=pytest.mark.postgres),
            pytest.param('mongodb', marks=pytest.mark.mongodb),
            pytest.param('dataapi', marks=pytest.mark.mongodb)]


@pytest.mark.parametrize('backend', BACKENDS)
def test_the_report_has_a_row_per_call(backend, capsys):
    if backend in ('mongodb', 'dataapi') and available():
        pytest.skip(available())
    # Pages of 5 so that a small installation has a deep page reached by 11 next links;
    # every page is checked against the data set before it is timed (a wrong one raises).
    assert bench_reads.main([
        '--events', '300', '--mongo-events', '300', '--requests', '3', '--mongo-requests', '3',
        '--backends', backend, '--pages', '1,3,12', '--page-size', '5', '--offset', '20',
    ]) == 0
    out = capsys.readouterr().out
    rows = [ROW.match(line).groups() for line in out.splitlines() if ROW.match(line)]
    mine = [row for row in rows if row[0] == backend]
    # 300 events, 43 approved: page 12 of approved (events 56 to 60) does not exist.
    assert [row[1] for row in mine] == CASES
    assert 'page 12 (cursor), approved' in out
    assert f'{backend}: page 12 (cursor) reached by 11 next links' in out
    for _, _, calls, p50, p99, _ in mine:
        assert int(calls) == 3
        assert 0 < float(p50) <= float(p99)
    if backend in ('mongodb', 'dataapi'):
        assert [row[1] for row in rows if row[0] == 'pymongo'] == [
            'page 1, find alone', 'page 1, approved, find alone', 'page 1, approved, no hint']


def test_the_cases_are_the_pages_the_issue_names():
    cases, skipped = bench_reads.read_cases(1_000_000, bench_reads.Shape())
    names = {case.name: case for case in cases}
    assert list(names) == [
        'page 1', 'page 100 (cursor)', 'page 1,000 (cursor)', 'offset 10,000',
        'page 1, approved', 'page 100 (cursor), approved', 'page 1,000 (cursor), approved',
        'offset 10,000, approved', 'timeline']
    assert names['page 1,000 (cursor)'].depth == 999 * 50
    assert skipped == []
    assert reads_data.total_rows(1_000_000) == 1_500_000
    # At the MongoDB backends' count: the pages that exist, the others named.
    _, skipped = bench_reads.read_cases(bench_reads.MONGO_EVENTS, bench_reads.Shape())
    assert 'page 1,000 (cursor)' in skipped
    assert 'page 100 (cursor)' not in skipped
