"""What one event becomes (`store_event`): a stored record and a task result."""
import asyncio
import logging
import os
import sqlite3

import pytest
from connect.eaas.core.enums import ResultType

from connect_mongodb_example.errors import (
    ConfigurationError,
    StorageRejected,
    StorageUnavailable,
)
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import stores_for
from connect_mongodb_example.storage.sql_schema import EVENTS_TABLE
from tests.support.delivery import deliver


def stored_rows(sqlite_url):
    path = sqlite_url[len('sqlite:///'):]
    with sqlite3.connect(path) as connection:
        return connection.execute(
            f'SELECT request_id, status, installation_id, account_id, delivery_count '
            f'FROM {EVENTS_TABLE} ORDER BY id').fetchall()


async def test_event_is_stored_and_done(sqlite_url, purchase_request, installation, logger):
    response = await deliver(
        purchase_request(), config={'DATABASE_URL': sqlite_url}, logger=logger,
        installation=installation,
    )
    assert response.status == ResultType.SUCCESS
    assert stored_rows(sqlite_url) == [
        ('PR-1234-5678-9012-001', 'pending', 'EIN-8436-7221-1234', 'VA-000-001', 1),
    ]


async def test_redelivered_ten_times_is_one_record_counted_ten_times(
    sqlite_url, purchase_request, logger,
):
    config = {'DATABASE_URL': sqlite_url}
    responses = await asyncio.gather(*(
        deliver(purchase_request(), config=config, logger=logger) for _ in range(10)
    ))
    assert {response.status for response in responses} == {ResultType.SUCCESS}
    assert stored_rows(sqlite_url) == [('PR-1234-5678-9012-001', 'pending', None, None, 10)]


async def test_hundred_concurrent_events_are_all_stored(sqlite_url, purchase_request, logger):
    config = {'DATABASE_URL': sqlite_url}
    responses = await asyncio.gather(*(
        deliver(purchase_request(f'PR-0000-0000-0000-{index:03d}'), config=config,
                     logger=logger)
        for index in range(100)
    ))
    assert {response.status for response in responses} == {ResultType.SUCCESS}
    rows = stored_rows(sqlite_url)
    assert sorted(row[0] for row in rows) == [f'PR-0000-0000-0000-{i:03d}' for i in range(100)]
    assert {row[4] for row in rows} == {1}


@pytest.mark.parametrize('request_', [
    ['not', 'an', 'object'],
    {'status': 'pending'},
    {'id': 'PR-1234-5678-9012-001'},
    {'id': 'PR-1234-5678-9012-001', 'status': 'draft'},
])
async def test_invalid_request_fails_and_writes_nothing(sqlite_url, logger, caplog, request_):
    response = await deliver(request_, config={'DATABASE_URL': sqlite_url}, logger=logger)
    assert response.status == ResultType.FAIL
    assert response.output
    assert response.output in caplog.text
    # The database is not even opened for a request that cannot be stored.
    assert not os.path.exists(sqlite_url[len('sqlite:///'):])


async def test_unavailable_storage_reschedules_then_stores_once(
    fake_backend, purchase_request, logger, caplog,
):
    config = {'STORAGE_BACKENDS': 'fake', 'RETRY_COUNTDOWN_SECONDS': '45'}
    [store] = stores_for(load_settings(config))
    store.fail_with = StorageUnavailable('fake: connection refused')
    response = await deliver(purchase_request(), config=config, logger=logger)
    assert (response.status, response.countdown) == (ResultType.RESCHEDULE, 45)
    assert store.records == {}
    assert 'rescheduled in 45s: fake: connection refused' in caplog.text

    store.fail_with = None
    response = await deliver(purchase_request(), config=config, logger=logger)
    assert response.status == ResultType.SUCCESS
    [record] = store.records.values()
    assert record.delivery_count == 1


async def test_storage_that_hangs_is_bounded_by_the_timeout(fake_backend, purchase_request, logger):
    config = {'STORAGE_BACKENDS': 'fake', 'STORAGE_TIMEOUT_SECONDS': '0.2'}
    [store] = stores_for(load_settings(config))
    store.hang = True
    response = await asyncio.wait_for(
        deliver(purchase_request(), config=config, logger=logger), timeout=5,
    )
    assert response.status == ResultType.RESCHEDULE
    assert store.records == {}


async def test_one_backend_down_reschedules_and_the_other_counts_the_retry(
    fake_backend, sqlite_url, purchase_request, logger,
):
    config = {'STORAGE_BACKENDS': 'sql,fake', 'DATABASE_URL': sqlite_url}
    fake = stores_for(load_settings(config))[1]
    fake.fail_with = StorageUnavailable('fake: down')
    first = await deliver(purchase_request(), config=config, logger=logger)
    fake.fail_with = None
    second = await deliver(purchase_request(), config=config, logger=logger)
    assert (first.status, second.status) == (ResultType.RESCHEDULE, ResultType.SUCCESS)
    assert stored_rows(sqlite_url) == [('PR-1234-5678-9012-001', 'pending', None, None, 2)]
    assert [record.delivery_count for record in fake.records.values()] == [1]


async def test_rejected_write_is_raised_for_the_runner_to_retry(
    fake_backend, purchase_request, logger, caplog,
):
    config = {'STORAGE_BACKENDS': 'fake'}
    [store] = stores_for(load_settings(config))
    store.fail_with = StorageRejected('fake: 401 unauthorized')
    with pytest.raises(StorageRejected):
        await deliver(purchase_request(), config=config, logger=logger)
    assert store.records == {}
    assert 'Storage refused event PR-1234-5678-9012-001' in caplog.text


async def test_misconfiguration_raises_an_error_naming_the_variable(
    purchase_request, logger, caplog,
):
    with pytest.raises(ConfigurationError) as error, caplog.at_level(logging.ERROR):
        await deliver(
            purchase_request(), config={'DATABASE_URL': 'sqlite://events.db'}, logger=logger,
        )
    assert error.value.variable == 'DATABASE_URL'
    assert 'Configuration problem' in caplog.text
    assert 'DATABASE_URL: a SQLite URL needs three slashes' in caplog.text


@pytest.mark.postgres
async def test_a_request_postgresql_cannot_store_fails_and_is_written_nowhere(
    fake_backend, postgres_url, purchase_request, logger,
):
    config = {'STORAGE_BACKENDS': 'fake,sql', 'DATABASE_URL': postgres_url}
    response = await deliver(purchase_request(note='a\x00b'), config=config, logger=logger)
    assert response.status == ResultType.FAIL
    assert 'contains NUL' in response.output
    fake, sql = stores_for(load_settings(config))
    assert fake.records == {}
    assert await sql.find('PR-1234-5678-9012-001') == []
