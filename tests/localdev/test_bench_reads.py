"""The read benchmark at a small size: what it loads is what the extension stores, and its
report has a row per call. No timing thresholds."""
import re

import pytest

from connect_mongodb_example.event_record import idempotency_key
from connect_mongodb_example.storage.base import EventFilter
from connect_mongodb_example.storage.sql import SqlEventStore, SqlSettings
from localdev.bench import reads as bench_reads

ROW = re.compile(r'^(sqlite|postgresql)\s+(.+?)\s+(\d+)\s+([\d.]+)\s+([\d.]+) (PASS|MISS)$')


@pytest.fixture(params=['sqlite', pytest.param('postgresql', marks=pytest.mark.postgres)])
def database_url(request):
    return request.getfixturevalue('sqlite_url' if request.param == 'sqlite' else 'postgres_url')


async def test_loaded_events_read_back_as_the_extension_stores_them(database_url):
    bench_reads.first_schema_version(database_url)
    load = (bench_reads.load_sqlite if database_url.startswith('sqlite')
            else bench_reads.load_postgres)
    load(database_url, 301)
    await bench_reads.migrate(database_url)
    store = SqlEventStore(SqlSettings(database_url, pool_size=2))
    try:
        target = EventFilter(bench_reads.TARGET)
        assert await store.count_events(target) == 301
        others = [await store.count_events(EventFilter(f'EIN-0000-1000-{n:04d}'))
                  for n in range(bench_reads.OTHERS)]
        assert sum(others) == bench_reads.total_rows(301) - 301
        assert all(others)
        page = await store.list_events(target, limit=50, offset=50)
        [full] = await store.find(page[0].request_id, installation_id=bench_reads.TARGET)
    finally:
        await store.close()
    assert len(page) == 50
    assert [record.last_received_at for record in page] == sorted(
        (record.last_received_at for record in page), reverse=True)
    assert full.key == idempotency_key(full.request_id, full.status, full.updated,
                                       bench_reads.TARGET)
    assert full.request['id'] == full.request_id
    assert full.request['asset']['id'].startswith('AS-')


def test_the_report_has_a_row_per_call(capsys):
    assert bench_reads.main(['--events', '300', '--requests', '10',
                             '--backends', 'sqlite']) == 0
    out = capsys.readouterr().out
    rows = [ROW.match(line).groups() for line in out.splitlines() if ROW.match(line)]
    assert [row[1] for row in rows] == ['page 1', 'page 1, approved', 'timeline']
    for _, _, calls, p50, p99, _ in rows:
        assert int(calls) == 10
        assert 0 < float(p50) <= float(p99)


def test_the_cases_are_the_pages_the_issue_names():
    cases = dict(bench_reads.read_cases(1_000_000))
    assert cases['page 1'] == '/api/events?limit=50&offset=0'
    assert cases['page 100'] == '/api/events?limit=50&offset=4950'
    assert cases['page 100, approved'].endswith('offset=4950&status=approved')
    assert bench_reads.total_rows(1_000_000) == 1_500_000
