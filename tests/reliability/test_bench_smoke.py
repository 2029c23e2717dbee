"""`make bench` in quick mode on SQLite: the table has its rows and the numbers are sane.

No timing thresholds: only that events were stored and measured. Also checks that the raw
baselines send what the extension sends, since the ratios mean nothing otherwise.
"""
import json
import re

import pytest
from bson import ObjectId, json_util

from connect_mongodb_example.storage import mongo_documents
from localdev.bench import cli as bench
from localdev.bench.dataapi import RawDataApiWork
from localdev.bench.sql import capture_upsert, upsert_parameters
from localdev.bench.workloads import EventFactory
from tests.support.records import purchase_record, summary

ROW = re.compile(r'^(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)$')


def test_quick_bench_on_sqlite_prints_every_row(tmp_path, capsys):
    assert bench.main(['--quick', '--backends', 'sqlite', '--output', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith('Machine: ')
    assert 'SQLite ' in out.splitlines()[0]
    rows = [ROW.match(line).groups() for line in out.splitlines() if ROW.match(line)]
    assert [(r[0], int(r[1]), r[2]) for r in rows] == [
        ('sqlite', 1, 'handler'), ('sqlite', 1, 'raw'),
        ('sqlite', 8, 'handler'), ('sqlite', 8, 'raw'),
    ]
    for _, _, _, events, per_second, p50, p99, failed in rows:
        assert int(events) > 0
        assert int(per_second) > 0
        assert 0 < float(p50) <= float(p99)
        assert failed == '0'
    assert re.search(r'^sqlite\s+1\s+\d+\.\d\d\s+-$', out, re.MULTILINE)  # the ratio row
    [saved] = tmp_path.glob('bench-*.json')
    results = json.loads(saved.read_text())['results']
    assert [(r['backend'], r['concurrency'], r['path']) for r in results] == [
        (r[0], int(r[1]), r[2]) for r in rows]
    assert all(r['per_second'] > 0 for r in results)


def test_unknown_backend_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(['--backends', 'sqlite,oracle'])
    assert '--backends: unknown oracle' in capsys.readouterr().err


async def test_raw_sql_runs_the_statement_and_values_of_the_extension(sqlite_url):
    events = EventFactory(1)
    sql, columns, tail = await capture_upsert({'DATABASE_URL': sqlite_url}, events)
    assert sql.startswith('INSERT INTO "connect_events"')
    assert 'ON CONFLICT ("key") DO UPDATE' in sql
    params = upsert_parameters(columns, tail, events, 7)
    record = purchase_record(events.request(7), installation=events.installation)
    by_column = dict(zip(columns, params))
    assert {name: by_column[name] for name in summary(record) if name in by_column} == {
        name: value for name, value in summary(record).items() if name in by_column}
    assert json.loads(by_column['request']) == record.request


def test_raw_data_api_bodies_are_the_backends():
    events = EventFactory(1)
    raw = RawDataApiWork('http://127.0.0.1:9', 'events', events, per_event=True)
    marker = ObjectId()
    update = json_util.loads(raw._bodies(3, marker)['updateOne'])
    record = purchase_record(events.request(3), installation=events.installation)
    expected = mongo_documents.upsert_update(record, marker)
    for document in (update['update'], expected):  # the receive times differ, rightly
        document['$setOnInsert'].pop('received_at')
        document['$max'].pop('last_received_at')
    assert update['update'] == expected
    assert update['filter'] == mongo_documents.key_filter(record)
