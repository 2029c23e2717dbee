"""Bad input and bad configuration: a clear result or error, and nothing half-written.

tests/test_event_handling.py covers the basic invalid requests on SQLite; these add the
several-megabyte requests, PostgreSQL, and several backends at once, where "nothing partial"
means no backend has the event when the result says it was not stored.
"""
import json
import logging
import os
import sqlite3
from contextlib import closing

import psycopg2
import pytest
from connect.eaas.core.enums import ResultType

from connect_mongodb_example.errors import ConfigurationError, InvalidRequest
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import stores_for
from connect_mongodb_example.storage.sql_schema import EVENTS_TABLE
from tests.reliability.helpers import (
    dataapi_config,
    deliver,
    mongo_counts,
    stored_rows,
)

SEVERAL_MB = 5_000_000
MONGO_URI = 'mongodb://writer:mongo-secret@db.example.com:27017/'


def big_request(purchase_request, request_id='PR-7500-0000-0000-001'):
    """About 5 MB of JSON: a long note plus many items, as a huge order would carry."""
    items = [{'id': f'PRD-276-377-545-{n:04d}', 'mpn': f'SKU-{n}', 'quantity': str(n),
              'display_name': 'Backup ' + 'ü' * 200} for n in range(2000)]
    request = purchase_request(request_id, note='x' * (SEVERAL_MB - 1_000_000))
    request['asset']['items'] = items
    assert len(json.dumps(request)) > SEVERAL_MB - 1
    return request


def stored_requests(url):
    """The stored request documents, decoded, read without the store under test."""
    if url.startswith('sqlite'):
        with closing(sqlite3.connect(url[len('sqlite:///'):])) as connection:
            return [json.loads(text) for (text,) in connection.execute(
                f'SELECT request FROM {EVENTS_TABLE}')]
    with closing(psycopg2.connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute(f'SELECT request FROM {EVENTS_TABLE}')
        return [document for (document,) in cursor.fetchall()]


def postgres_has_events_table(url):
    with closing(psycopg2.connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute('SELECT to_regclass(%s)', (EVENTS_TABLE,))
        return cursor.fetchone()[0] is not None


async def test_several_megabyte_request_is_stored_whole(
    database_url, purchase_request, logger, report,
):
    request = big_request(purchase_request)
    response = await deliver(request, {'DATABASE_URL': database_url}, logger)
    assert response.status == ResultType.SUCCESS
    assert stored_requests(database_url) == [request]
    assert [row[3] for row in stored_rows(database_url).values()] == [1]
    report(request_bytes=len(json.dumps(request)), stored=1)


@pytest.mark.postgres
async def test_several_megabyte_request_is_stored_whole_in_postgres_and_mongodb(
    postgres_url, fake_mongo, purchase_request, logger,
):
    config = {'STORAGE_BACKENDS': 'sql,mongodb', 'DATABASE_URL': postgres_url,
              'MONGODB_URI': MONGO_URI}
    request = big_request(purchase_request)
    assert (await deliver(request, config, logger)).status == ResultType.SUCCESS
    assert (await deliver(request, config, logger)).status == ResultType.SUCCESS
    assert stored_requests(postgres_url) == [request]
    [document] = fake_mongo.collection().find()
    assert document['request'] == request
    assert document['delivery_count'] == 2
    assert [row[3] for row in stored_rows(postgres_url).values()] == [2]


async def test_several_megabyte_request_is_stored_whole_through_the_data_api(
    dataapi_server, purchase_request, logger,
):
    request = big_request(purchase_request)
    for _ in range(2):
        response = await deliver(request, dataapi_config(dataapi_server), logger)
        assert response.status == ResultType.SUCCESS
    [document] = dataapi_server.collection('connect_events', 'events').find()
    assert document['request'] == request
    assert document['delivery_count'] == 2


BAD_REQUESTS = [
    pytest.param(['not', 'an', 'object'], 'must be a JSON object', id='list'),
    pytest.param('PR-1234', 'must be a JSON object', id='string'),
    pytest.param(None, 'must be a JSON object', id='null'),
    pytest.param({'status': 'pending'}, "has no 'id'", id='no-id'),
    pytest.param({'id': '  ', 'status': 'pending'}, "has no 'id'", id='blank-id'),
    pytest.param({'id': 'PR-1', 'status': None}, "has no 'status'", id='no-status'),
    pytest.param({'id': 'PR-1', 'status': 'draft'}, "status 'draft'", id='unknown-status'),
    pytest.param({'id': 'PR-1', 'status': 'pending', 'note': float('nan')},
                 'not valid JSON', id='nan'),
    pytest.param({'id': 'PR-1', 'status': 'pending', 'asset': {'items': {1, 2}}},
                 'not valid JSON', id='set'),
    pytest.param({'id': 'PR-1', 'status': 'pending', 'blob': b'\x00\x01'},
                 'not valid JSON', id='bytes'),
]


@pytest.mark.postgres
@pytest.mark.parametrize(('request_', 'problem'), BAD_REQUESTS)
async def test_invalid_request_fails_and_no_backend_is_written(
    postgres_url, fake_mongo, dataapi_server, logger, caplog, request_, problem,
):
    config = {**dataapi_config(dataapi_server), 'STORAGE_BACKENDS': 'sql,mongodb,dataapi',
              'DATABASE_URL': postgres_url, 'MONGODB_URI': MONGO_URI}
    response = await deliver(request_, config, logger)
    assert response.status == ResultType.FAIL
    assert problem in response.output
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f'Not storing the event: {response.output}']
    # No backend was even contacted: no table, no client, no HTTP request.
    assert not postgres_has_events_table(postgres_url)
    assert fake_mongo.clients == []
    assert dataapi_server.requests == 0


async def test_request_too_large_for_one_backend_is_written_nowhere(
    fake_backend, sqlite_url, purchase_request, logger,
):
    config = {'STORAGE_BACKENDS': 'sql,fake', 'DATABASE_URL': sqlite_url}
    fake = stores_for(load_settings(config))[1]
    # What the mongodb backend's check says of a document over MongoDB's 16 MiB limit.
    fake.refuse = InvalidRequest('mongodb: the document is too large')
    request = purchase_request(note='x' * 17_000_000)
    response = await deliver(request, config, logger)
    assert response.status == ResultType.FAIL
    assert not os.path.exists(sqlite_url[len('sqlite:///'):]) or stored_rows(sqlite_url) == {}


MISCONFIGURATIONS = [
    pytest.param({'STORAGE_BACKENDS': 'sql,oracle'}, 'STORAGE_BACKENDS', id='unknown-backend'),
    pytest.param({'STORAGE_BACKENDS': ''}, None, id='empty-backends-means-default'),
    pytest.param({'STORAGE_BACKENDS': 'sql,dataapi', 'DATA_API_KEY': 'k-secret'},
                 'DATA_API_URL', id='missing-data-api-url'),
    pytest.param({'STORAGE_BACKENDS': 'sql,dataapi', 'DATA_API_URL': 'http://127.0.0.1:9/'},
                 'DATA_API_KEY', id='missing-data-api-key'),
    pytest.param({'STORAGE_BACKENDS': 'sql,dataapi', 'DATA_API_KEY': 'k-secret',
                  'DATA_API_URL': 'http://api.example.com/'}, 'DATA_API_URL',
                 id='plain-http-data-api'),
    pytest.param({'STORAGE_BACKENDS': 'sql,mongodb'}, 'MONGODB_URI', id='missing-mongodb-uri'),
    pytest.param({'STORAGE_BACKENDS': 'sql,mongodb',
                  'MONGODB_URI': 'mongodb://writer:s3cret-pw@'}, 'MONGODB_URI',
                 id='mongodb-uri-without-host'),
    pytest.param({'DATABASE_URL': 'postgresql://app:s3cret-pw@/events'}, 'DATABASE_URL',
                 id='database-url-without-host'),
    pytest.param({'DATABASE_URL': 'mysql://app:s3cret-pw@db/events'}, 'DATABASE_URL',
                 id='unsupported-database'),
    pytest.param({'DATABASE_POOL_SIZE': 'eight'}, 'DATABASE_POOL_SIZE', id='pool-not-a-number'),
    pytest.param({'STORAGE_TIMEOUT_SECONDS': '0'}, 'STORAGE_TIMEOUT_SECONDS',
                 id='timeout-out-of-range'),
]


@pytest.mark.parametrize(('config', 'variable'), MISCONFIGURATIONS)
async def test_misconfiguration_is_one_error_naming_the_variable_and_nothing_is_written(
    sqlite_url, purchase_request, logger, caplog, config, variable,
):
    config = {'DATABASE_URL': sqlite_url, **config}
    if variable is None:
        # An empty value is "not set": the default applies, which is not an error.
        assert (await deliver(purchase_request(), config, logger)).status == ResultType.SUCCESS
        return
    with pytest.raises(ConfigurationError) as error:
        await deliver(purchase_request(), config, logger)
    assert error.value.variable == variable
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert f'{variable}: ' in errors[0]
    for secret in ('s3cret-pw', 'k-secret'):
        assert secret not in str(error.value)
        assert secret not in errors[0]
    # The configuration is checked before any backend writes, so not even SQL has the event.
    if config['DATABASE_URL'] == sqlite_url:
        assert not os.path.exists(sqlite_url[len('sqlite:///'):])


async def test_valid_configuration_writes_both_backends_after_a_fix(
    sqlite_url, fake_mongo, purchase_request, logger,
):
    """After a misconfiguration the runner retries; once fixed, the event lands everywhere,
    stored once."""
    broken = {'STORAGE_BACKENDS': 'sql,mongodb', 'DATABASE_URL': sqlite_url}
    with pytest.raises(ConfigurationError):
        await deliver(purchase_request(), broken, logger)
    fixed = {**broken, 'MONGODB_URI': MONGO_URI}
    assert (await deliver(purchase_request(), fixed, logger)).status == ResultType.SUCCESS
    assert [row[3] for row in stored_rows(sqlite_url).values()] == [1]
    assert list(mongo_counts(fake_mongo.collection()).values()) == [1]
