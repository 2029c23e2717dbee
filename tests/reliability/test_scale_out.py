"""Scale out with faults: several real runners on one database (PostgreSQL through PgBouncer,
or SQLite), one of them SIGKILLed mid-stream and started again, while Connect (the
emulation) redelivers what it held.

Every event must end stored exactly once (one row per key) with a delivery count between
its own deliveries and those plus the redeliveries of its tasks, every task answered, and
every row whole: what was stored is the request that was delivered.
"""
import asyncio
import json
import sqlite3
from collections import Counter
from contextlib import closing
from typing import Any, Dict, List, Tuple

import psycopg2
import pytest

from connect_mongodb_example.event_record import build_record
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.storage.sql_schema import EVENTS_TABLE
from localdev.connect_emulator import ConnectEmulator, Delivery, Event
from localdev.offline import REPO_ROOT
from localdev.runner_fleet import RunnerFleet

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(280)]

#: Events per run: one runner takes ~30 tasks/s at most on 2 free cores (see docs/sizing.md),
#: so SQLite's single runner gets fewer than the three PostgreSQL runners.
POSTGRES_EVENTS = 600
SQLITE_EVENTS = 200
#: Every TWICE-th event is delivered twice, as Connect may do.
TWICE = 10
STATUSES = ('pending', 'approved')
INSTALLATIONS = [
    {'id': f'EIN-1000-0000-000{n}', 'owner': {'id': f'VA-000-00{n}', 'name': f'Vendor {n}'}}
    for n in range(1, 4)
]
#: Kill a runner once this share of the tasks is answered: mid-stream, with tasks out on it.
KILL_AFTER = 0.2
RESULTS_TIMEOUT = 200
COLUMNS = ('key', 'request_id', 'status', 'updated', 'event_type', 'asset_id', 'product_id',
           'installation_id', 'account_id', 'delivery_count', 'request')
# Runners starting together (five processes each) on two shared cores can take a minute
# to be set up: that is start-up time, not what this test measures.
READY_TIMEOUT = 180


def make_events(purchase_request, count: int) -> List[Event]:
    """`count` events: two statuses of count/2 requests, over three installations."""
    events = []
    for number in range(count // len(STATUSES)):
        for hour, status in enumerate(STATUSES):
            request = purchase_request(
                f'PR-7000-{number // 1000:04d}-{number % 1000:04d}-001', status,
                updated=f'2026-11-20T{10 + hour:02d}:00:00+00:00',
            )
            index = len(events)
            events.append(Event(request, INSTALLATIONS[number % len(INSTALLATIONS)],
                                deliveries=2 if index % TWICE == 0 else 1))
    return events


def stored_rows(url: str) -> List[Dict[str, Any]]:
    query = f'SELECT {", ".join(COLUMNS)} FROM {EVENTS_TABLE}'
    if url.startswith('sqlite:'):
        with closing(sqlite3.connect(url[len('sqlite:///'):])) as connection:
            # A writer killed mid-transaction must leave a database SQLite finds sound.
            assert connection.execute('PRAGMA integrity_check').fetchall() == [('ok',)]
            rows = connection.execute(query).fetchall()
    else:
        with closing(psycopg2.connect(url, connect_timeout=5)) as connection, \
                connection.cursor() as cursor:
            cursor.execute(query)
            rows = cursor.fetchall()
    return [dict(zip(COLUMNS, row)) for row in rows]


async def run_with_a_kill(
    database_url: str, events: List[Event], instances: int, tmp_path,
) -> Tuple[ConnectEmulator, List[Delivery]]:
    """Deliver `events` to `instances` runners; SIGKILL runner 1 mid-stream, start it again."""
    log = tmp_path / 'runners.log'
    variables = {'DATABASE_URL': database_url, 'DATABASE_POOL_SIZE': '4'}
    async with ConnectEmulator(variables=variables, task_timeout=60) as emulator, \
            RunnerFleet(emulator, log_path=log, cwd=REPO_ROOT) as fleet:
        try:
            await fleet.start_all(instances, ready_timeout=READY_TIMEOUT)
            delivering = asyncio.ensure_future(emulator.deliver_all(events))
            kill_after = KILL_AFTER * sum(event.deliveries for event in events)
            while len(emulator.channel.results) < kill_after:
                assert not delivering.done(), 'all delivered before the kill'
                await asyncio.sleep(0.02)
            held = sum(len(link.pending) for link in emulator.channel.workers.links('background')
                       if link.instance_id == fleet.instance_id('1'))
            await fleet.kill('1')
            await fleet.start('1', ready_timeout=READY_TIMEOUT)
            deliveries = await asyncio.wait_for(delivering, RESULTS_TIMEOUT)
        finally:
            print(log.read_text(errors='replace')[-6000:])  # shown when the test fails
    assert held > 0, 'the killed runner held no task'
    return emulator, deliveries


def check_outcome(database_url: str, emulator: ConnectEmulator, deliveries: List[Delivery],
                  events: List[Event]) -> Dict[str, int]:
    # Every task answered, and answered success (a redelivered one by another worker).
    assert [delivery.event for delivery in deliveries] == events
    for delivery in deliveries:
        assert [r.result for r in delivery.results] == ['success'] * delivery.event.deliveries
    # What each event's tasks cost in redeliveries: the killed runner may have stored an
    # event and died before it answered, so that event was stored once more.
    redelivered = Counter(r.task_id for r in emulator.channel.workers.redeliveries)
    expected = {}
    for delivery in deliveries:
        record = build_record(
            delivery.event.request, PURCHASE_REQUEST, installation=delivery.event.installation)
        extra = sum(redelivered[result.task_id] for result in delivery.results)
        expected[record.key] = (record, delivery.event, extra)

    rows = stored_rows(database_url)
    keys = Counter(row['key'] for row in rows)
    assert [key for key, count in keys.items() if count > 1] == []  # one row per key
    assert set(keys) == set(expected)  # every event, nothing else
    for row in rows:
        record, event, extra = expected[row['key']]
        assert event.deliveries <= row['delivery_count'] <= event.deliveries + extra, row['key']
        request = row['request'] if isinstance(row['request'], dict) else json.loads(
            row['request'])
        whole = {name: getattr(record, name) for name in COLUMNS[1:-2]}
        assert {name: row[name] for name in whole} == whole, row['key']
        assert request == event.request, row['key']
    return {
        'events': len(events),
        'tasks': sum(event.deliveries for event in events),
        'redelivered': len(emulator.channel.workers.redeliveries),
        'stored_more_than_delivered': sum(
            row['delivery_count'] > expected[row['key']][1].deliveries for row in rows),
    }


@pytest.mark.postgres
async def test_three_runners_on_postgresql_through_pgbouncer_one_killed_and_restarted(
    postgres_url, pgbouncer_url, purchase_request, tmp_path, report,
):
    """The runners reach the database through PgBouncer in transaction mode, as a deployment
    of many runners would (see HOWTO, "Behind PgBouncer"); the rows are read directly. A
    runner killed mid-transaction leaves PgBouncer to roll it back on its server connection."""
    events = make_events(purchase_request, POSTGRES_EVENTS)

    emulator, deliveries = await run_with_a_kill(pgbouncer_url, events, 3, tmp_path)

    counts = check_outcome(postgres_url, emulator, deliveries, events)
    by_instance = Counter(r.instance_id for d in deliveries for r in d.results)
    assert len(by_instance) == 3  # the work was spread over all three
    assert counts['redelivered'] > 0
    report(**counts, instances=len(by_instance))


async def test_one_runner_on_sqlite_killed_and_restarted(
    sqlite_url, purchase_request, tmp_path, report,
):
    events = make_events(purchase_request, SQLITE_EVENTS)

    emulator, deliveries = await run_with_a_kill(sqlite_url, events, 1, tmp_path)

    counts = check_outcome(sqlite_url, emulator, deliveries, events)
    assert counts['redelivered'] > 0
    report(**counts)
