"""Six processes meeting a fresh database at once, as several runner workers and replicas
do on a first deployment, or an existing database on the first deployment of a version with
new migrations: every one migrates (or creates the indexes) and saves the same events. None
may fail, each event is one record counting every delivery, and the counts the triggers
keep match the events stored."""
import pytest
from pymongo import MongoClient

from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.storage.sql_schema import (
    COUNTS_TABLE,
    EVENTS_TABLE,
    INSTALLATIONS_TABLE,
    MIGRATIONS,
)
from tests.support.concurrent_saves import INSTALLATION, save_in_processes
from tests.support.postgres import run_sql
from tests.support.records import purchase_record
from tests.support.sql_databases import first_version_with_events, sql

PROCESSES = 6
EVENTS = 3

#: Every migration applied once, however many processes raced to apply it.
APPLIED = [(version,) for version, _ in MIGRATIONS]


def requests(purchase_request):
    statuses = PURCHASE_REQUEST.statuses
    return [purchase_request(f'PR-0000-0000-0000-{i:03d}', status=statuses[i % len(statuses)])
            for i in range(EVENTS)]


def assert_counts_match_events(url):
    """The counts the triggers keep (summed over shards) are the events stored, for every
    installation and status."""
    counted = sql(url, f'SELECT installation_id, status, SUM(events) FROM {COUNTS_TABLE} '
                       'GROUP BY installation_id, status HAVING SUM(events) <> 0')
    stored = sql(url, f'SELECT installation_id, status, COUNT(*) FROM {EVENTS_TABLE} '
                      'WHERE installation_id IS NOT NULL GROUP BY installation_id, status')
    assert sorted((i, s, int(n)) for i, s, n in counted) == sorted(stored)
    return sorted(stored)


def assert_every_process_saved_every_event(outcomes):
    errors = [outcome for outcome in outcomes if isinstance(outcome, str)]
    assert errors == []
    assert len(outcomes) == PROCESSES
    # Each process saw one of the delivery counts 1..PROCESSES of each event.
    for event in range(EVENTS):
        assert sorted(counts[event] for counts in outcomes) == list(range(1, PROCESSES + 1))


#: PostgreSQL directly, or through PgBouncer in transaction mode (the migration lock must be
#: the transaction's: a session's lock would outlive the transaction on a pooled server
#: connection that another client gets next).
POSTGRES_ROUTES = [pytest.param('postgres_url', id='postgresql', marks=pytest.mark.postgres),
                   pytest.param('pgbouncer_url', id='pgbouncer', marks=pytest.mark.postgres)]


@pytest.mark.parametrize('route', POSTGRES_ROUTES)
def test_postgresql(request, route, postgres_url, purchase_request):
    outcomes = save_in_processes(PROCESSES, {'DATABASE_URL': request.getfixturevalue(route)},
                                 requests(purchase_request))
    assert_every_process_saved_every_event(outcomes)
    rows = run_sql(postgres_url, 'SELECT request_id, delivery_count FROM connect_events '
                                 'ORDER BY request_id')
    assert rows == [(f'PR-0000-0000-0000-{i:03d}', PROCESSES) for i in range(EVENTS)]
    assert run_sql(postgres_url, 'SELECT version FROM connect_events_schema ORDER BY version') == \
        APPLIED
    assert len(assert_counts_match_events(postgres_url)) == EVENTS


def test_sqlite(sqlite_url, purchase_request):
    import sqlite3

    outcomes = save_in_processes(PROCESSES, {'DATABASE_URL': sqlite_url},
                                 requests(purchase_request))
    assert_every_process_saved_every_event(outcomes)
    path = sqlite_url[len('sqlite:///'):]
    with sqlite3.connect(path) as connection:
        rows = connection.execute('SELECT request_id, delivery_count FROM connect_events '
                                  'ORDER BY request_id').fetchall()
        versions = connection.execute('SELECT version FROM connect_events_schema').fetchall()
    assert rows == [(f'PR-0000-0000-0000-{i:03d}', PROCESSES) for i in range(EVENTS)]
    assert sorted(versions) == APPLIED
    assert len(assert_counts_match_events(sqlite_url)) == EVENTS


@pytest.mark.parametrize('route', [pytest.param('sqlite_url', id='sqlite'), *POSTGRES_ROUTES])
def test_an_existing_database_upgraded(request, route, purchase_request):
    """A database the first schema version left with events (one of them delivered again
    now, others of other installations): the processes race to apply the later migrations
    (read indexes, counts kept by triggers, the installations table) and to save."""
    url = request.getfixturevalue('sqlite_url' if route == 'sqlite_url' else 'postgres_url')
    new = requests(purchase_request)
    earlier = [purchase_record(new[0], installation={'id': INSTALLATION})] + [
        purchase_record(purchase_request(f'PR-9999-0000-0000-{i:03d}', status=status),
                        installation={'id': f'EIN-EARLIER-{i % 2}'})
        for i, status in enumerate(PURCHASE_REQUEST.statuses)]
    first_version_with_events(url, earlier)

    outcomes = save_in_processes(PROCESSES, {'DATABASE_URL': request.getfixturevalue(route)},
                                 new)

    assert [outcome for outcome in outcomes if isinstance(outcome, str)] == []
    # The event stored before counts its earlier delivery too.
    assert sorted(counts[0] for counts in outcomes) == list(range(2, PROCESSES + 2))
    rows = sql(url, f"SELECT request_id, delivery_count FROM {EVENTS_TABLE} "
                    f"WHERE installation_id = '{INSTALLATION}' ORDER BY request_id")
    assert rows == [(f'PR-0000-0000-0000-{i:03d}', PROCESSES + (i == 0)) for i in range(EVENTS)]
    assert sorted(sql(url, 'SELECT version FROM connect_events_schema')) == APPLIED
    assert len(assert_counts_match_events(url)) == EVENTS + len(PURCHASE_REQUEST.statuses)
    assert sql(url, f'SELECT COUNT(*) FROM {INSTALLATIONS_TABLE}') == [(0,)]


@pytest.mark.mongodb
@pytest.mark.parametrize('driver', ['pymongo', 'motor'])
def test_mongodb(mongodb_server, purchase_request, driver):
    collection = f'events_concurrent_{driver}'
    config = {'STORAGE_BACKENDS': 'mongodb', 'MONGODB_URI': mongodb_server.uri,
              'MONGODB_DATABASE': 'connect_events_tests', 'MONGODB_COLLECTION': collection,
              'MONGODB_DRIVER': driver}
    with MongoClient(mongodb_server.admin_uri) as admin:
        database = admin['connect_events_tests']
        database.drop_collection(collection)
        try:
            outcomes = save_in_processes(PROCESSES, config, requests(purchase_request))
            errors = [outcome for outcome in outcomes if isinstance(outcome, str)]
            assert errors == []
            documents = list(database[collection].find({}, {'_id': 0, 'request_id': 1,
                                                            'delivery_count': 1}))
            indexes = database[collection].index_information()
        finally:
            database.drop_collection(collection)
    assert sorted((d['request_id'], d['delivery_count']) for d in documents) == [
        (f'PR-0000-0000-0000-{i:03d}', PROCESSES) for i in range(EVENTS)]
    assert indexes['connect_events_idempotency_key_uniq']['unique'] is True
    if not mongodb_server.throwaway:
        # On SecantusDB a racing upsert may report a later count (see
        # test_mongodb_integration): the stored counts above are exact on both.
        assert_every_process_saved_every_event(outcomes)
