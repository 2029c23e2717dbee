"""The application class as the runner uses it: a new instance per task."""
import asyncio
import logging

import pytest
from connect.eaas.core.enums import ResultType

from connect_mongodb_example.extension import PURCHASE_REQUEST, StatefulEventsApplication
from connect_mongodb_example.storage.sql_schema import EVENTS_TABLE
from tests.support.connections import open_files, settled
from tests.support.delivery import open_stores
from tests.support.postgres import run_sql
from tests.support.sql_databases import sql


def new_task_app(config, logger, installation=None):
    return StatefulEventsApplication(
        client=None, logger=logger, config=config, installation=installation,
    )


def test_handles_purchase_requests_in_every_status():
    [event] = [declared for declared in StatefulEventsApplication.get_events()
               if declared['event_type'] == PURCHASE_REQUEST.name]
    assert event == {
        'method': 'handle_asset_purchase_request_processing',
        'event_type': 'asset_purchase_request_processing',
        'statuses': list(PURCHASE_REQUEST.statuses),
    }
    assert set(PURCHASE_REQUEST.statuses) == {
        'pending', 'approved', 'failed', 'inquiring', 'scheduled', 'revoking', 'revoked',
    }


async def test_tasks_share_one_store_per_process(
    sqlite_url, purchase_request, installation, logger,
):
    config = {'DATABASE_URL': sqlite_url}
    for status in ('pending', 'approved', 'revoking'):
        app = new_task_app(config, logger, installation)
        response = await app.handle_asset_purchase_request_processing(
            purchase_request(status=status),
        )
        assert response.status == ResultType.SUCCESS
    [store] = open_stores()
    stored = await store.find('PR-1234-5678-9012-001', installation_id=installation['id'])
    assert [(record.status, record.account_id) for record in stored] == [
        ('pending', 'VA-000-001'), ('approved', 'VA-000-001'), ('revoking', 'VA-000-001'),
    ]


async def test_startup_checks_storage_and_shutdown_closes_it(sqlite_url, logger, caplog):
    config = {'DATABASE_URL': sqlite_url}
    with caplog.at_level(logging.INFO):
        await StatefulEventsApplication.on_startup(logger, config)
    assert f'Storage ready: sql ({sqlite_url})' in caplog.text
    # The check created the database, and left no connection open: the worker that runs
    # on_startup may never store an event.
    path = sqlite_url[len('sqlite:///'):]
    assert sql(sqlite_url, f'SELECT count(*) FROM {EVENTS_TABLE}') == [(0,)]
    assert open_files(path) == 0
    [store] = open_stores()
    await StatefulEventsApplication.on_shutdown(logger, config)
    assert open_stores() == []
    assert store._database is None


@pytest.mark.postgres
async def test_startup_leaves_no_postgresql_connection_open(
    postgres_url, purchase_request, installation, logger,
):
    config = {'DATABASE_URL': f'{postgres_url}?application_name=startup-check'}

    def connections() -> int:
        return run_sql(postgres_url, 'SELECT count(*) FROM pg_stat_activity '
                                     "WHERE application_name = 'startup-check'")[0][0]

    await StatefulEventsApplication.on_startup(logger, config)
    assert run_sql(postgres_url, f'SELECT count(*) FROM {EVENTS_TABLE}') == [(0,)]
    assert await asyncio.to_thread(settled, connections, 0) == 0
    # The store reconnects for the first event.
    app = new_task_app(config, logger, installation)
    response = await app.handle_asset_purchase_request_processing(purchase_request())
    assert response.status == ResultType.SUCCESS
    assert connections() == 1


async def test_startup_reports_bad_configuration_without_crashing(logger, caplog):
    await StatefulEventsApplication.on_startup(logger, {'STORAGE_BACKENDS': 'oracle'})
    assert "Configuration problem: STORAGE_BACKENDS: unknown name 'oracle'" in caplog.text
    assert open_stores() == []


async def test_startup_warns_when_storage_is_down(logger, caplog):
    url = 'postgresql://app:hunter2@127.0.0.1:1/events'
    await StatefulEventsApplication.on_startup(logger, {'DATABASE_URL': url})
    assert 'not reachable yet' in caplog.text
    assert 'hunter2' not in caplog.text

