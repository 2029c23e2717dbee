"""No password, key or connection string reaches a log line or a task result.

Every logger is at DEBUG, drivers included (peewee, psycopg2 via peewee, httpx, httpcore,
pymongo, aiohttp, connect.*), and each backend is run both when it works and when it fails,
since failures are where drivers and the application print the most.
"""
import logging
import traceback
from typing import Any, Dict, List
from urllib.parse import quote_plus

import pytest

from connect_mongodb_example.extension import StatefulEventsApplication
from tests.reliability.helpers import deliver
from tests.support.postgres import free_port

PG_PASSWORD = 'pg-Pa55:w0rd/%x'
DATA_API_SECRET = 'dataapi-Key-7f3a9c'
MONGO_PASSWORD = 'mongo-Pa55@w0rd'
DRIVER_LOGGERS = ('peewee', 'playhouse', 'httpx', 'httpcore', 'pymongo', 'motor', 'aiohttp',
                  'asyncio', 'connect', 'connect.eaas', 'connect.eaas.core',
                  'connect_mongodb_example')


@pytest.fixture
def debug_everywhere(caplog) -> Any:
    """Root and every logger known so far at DEBUG; caplog captures them all."""
    caplog.set_level(logging.DEBUG)
    names = set(DRIVER_LOGGERS) | set(logging.root.manager.loggerDict)
    for name in names:
        caplog.set_level(logging.DEBUG, logger=name)  # restored by caplog after the test
    return caplog


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split('://', 1)
    user, host = rest.split('@', 1)
    return f'{scheme}://{user}:{quote_plus(password)}@{host}'


def secrets_in(*configs: Dict[str, str]) -> List[str]:
    """What must never be shown: each password and key, raw and URL-quoted, and every full
    connection string (user:password@host)."""
    found = [PG_PASSWORD, quote_plus(PG_PASSWORD), DATA_API_SECRET, MONGO_PASSWORD,
             quote_plus(MONGO_PASSWORD)]
    found += [value for config in configs for name, value in config.items()
              if name in ('DATABASE_URL', 'MONGODB_URI') and '@' in value]
    return found


async def run_events(config: Dict[str, str], logger: Any, purchase_request) -> List[str]:
    """Startup, three events (one redelivered), shutdown; every result output and every
    raised error, with its whole chain of causes as the runner would log it."""
    shown: List[str] = []
    await StatefulEventsApplication.on_startup(logger, config)
    for request in (purchase_request(), purchase_request(), purchase_request(status='approved')):
        try:
            response = await deliver(request, config, logger)
            shown.append(str(response.output or ''))
        except Exception as error:  # noqa: BLE001 - what the runner would log
            shown.append(''.join(
                traceback.format_exception(type(error), error, error.__traceback__)))
    await StatefulEventsApplication.on_shutdown(logger, config)
    return shown


def drivers_at_debug(caplog) -> set:
    """The top-level loggers that wrote DEBUG lines: proof the drivers were heard."""
    return {r.name.split('.')[0] for r in caplog.records if r.levelno == logging.DEBUG}


def assert_no_secret(caplog, shown: List[str], *configs: Dict[str, str]) -> int:
    """Checks every captured record (message and traceback) and every result; the count."""
    lines = [record.getMessage() for record in caplog.records]
    lines += [caplog.text, *shown]
    for secret in secrets_in(*configs):
        leaks = [line for line in lines if secret in line]
        assert leaks == [], f'{secret!r} was shown: {leaks[0][:300]}'
    return len(caplog.records)


@pytest.mark.postgres
async def test_postgresql_with_password_working_and_unreachable(
    postgres_url, debug_everywhere, purchase_request, logger, report,
):
    # The local server trusts loopback, so the password is sent and ignored; it still is
    # in the URL the application holds, which is what must not leak.
    working = {'DATABASE_URL': with_password(postgres_url, PG_PASSWORD)}
    down = {'DATABASE_URL': f'postgresql://writer:{quote_plus(PG_PASSWORD)}@127.0.0.1:'
                            f'{free_port()}/events'}
    shown = await run_events(working, logger, purchase_request)
    shown += await run_events(down, logger, purchase_request)
    assert 'PR-1234-5678-9012-001:pending' in debug_everywhere.text
    assert 'rescheduled in 30s' in debug_everywhere.text
    assert 'peewee' in drivers_at_debug(debug_everywhere)
    report(log_records_checked=assert_no_secret(debug_everywhere, shown, working, down))


async def test_data_api_key_working_and_refused(
    dataapi_server, debug_everywhere, purchase_request, logger, report,
):
    dataapi_server.api_key = DATA_API_SECRET
    base = {'STORAGE_BACKENDS': 'dataapi', 'DATA_API_URL': dataapi_server.base_url,
            'DATA_API_RETRIES': '1'}
    shown = await run_events({**base, 'DATA_API_KEY': DATA_API_SECRET}, logger, purchase_request)
    # A wrong key that embeds the right one: a server echoing the key would show both.
    wrong = {**base, 'DATA_API_KEY': DATA_API_SECRET + '-old'}
    shown += await run_events(wrong, logger, purchase_request)
    dataapi_server.fail_next(1, status=503)
    shown += await run_events({**base, 'DATA_API_KEY': DATA_API_SECRET}, logger, purchase_request)
    text = debug_everywhere.text
    assert 'HTTP 401' in text
    assert 'HTTP 503' in text
    assert 'HTTP Request: POST' in text
    assert {'httpx', 'httpcore'} <= drivers_at_debug(debug_everywhere)
    report(log_records_checked=assert_no_secret(debug_everywhere, shown, base))


async def test_mongodb_uri_with_password_working_and_unreachable(
    fake_mongo, debug_everywhere, purchase_request, logger, report, monkeypatch,
):
    uri = f'mongodb://writer:{quote_plus(MONGO_PASSWORD)}@db.example.com:27017/'
    working = {'STORAGE_BACKENDS': 'mongodb', 'MONGODB_URI': uri}
    shown = await run_events(working, logger, purchase_request)
    assert list(fake_mongo.collection().find({}, {'delivery_count': 1, '_id': 0})) == [
        {'delivery_count': 2}, {'delivery_count': 1}]
    # The real PyMongo client against a closed port: server selection fails and is logged.
    monkeypatch.undo()
    closed = {'STORAGE_BACKENDS': 'mongodb', 'MONGODB_TIMEOUT_MS': '200',
              'MONGODB_URI': f'mongodb://writer:{quote_plus(MONGO_PASSWORD)}@127.0.0.1:'
                             f'{free_port()}/'}
    shown += await run_events(closed, logger, purchase_request)
    # The tutorial's form: the password in its own variable.
    tutorial = {'STORAGE_BACKENDS': 'mongodb', 'MONGODB_TIMEOUT_MS': '200',
                'DB_HOST': 'cluster0.invalid', 'DB_USER': 'writer',
                'DB_PASSWORD': MONGO_PASSWORD}
    shown += await run_events(tutorial, logger, purchase_request)
    assert 'rescheduled in 30s' in debug_everywhere.text
    assert 'pymongo' in drivers_at_debug(debug_everywhere)
    report(log_records_checked=assert_no_secret(debug_everywhere, shown, working, closed))


@pytest.mark.postgres
async def test_all_backends_at_once(
    postgres_url, dataapi_server, fake_mongo, debug_everywhere, purchase_request, logger,
):
    dataapi_server.api_key = DATA_API_SECRET
    config = {
        'STORAGE_BACKENDS': 'sql,mongodb,dataapi',
        'DATABASE_URL': with_password(postgres_url, PG_PASSWORD),
        'MONGODB_URI': f'mongodb://writer:{quote_plus(MONGO_PASSWORD)}@db.example.com/',
        'DATA_API_URL': dataapi_server.base_url, 'DATA_API_KEY': DATA_API_SECRET,
    }
    shown = await run_events(config, logger, purchase_request)
    assert shown == ['', '', '']
    assert debug_everywhere.text.count('Stored ') == 9
    assert {'peewee', 'httpx', 'httpcore'} <= drivers_at_debug(debug_everywhere)
    assert_no_secret(debug_everywhere, shown, config)
