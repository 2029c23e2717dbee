"""The SQL backend against a PostgreSQL server that checks passwords (scram-sha-256).

The suite's other servers trust every connection, so they cannot tell a password that
reaches the server intact from one that arrives still URL-quoted, nor a wrong password
from an outage.
"""
import logging
import uuid
from urllib.parse import quote

import pytest
from psycopg2 import sql

from connect_mongodb_example.errors import ConfigurationError, StorageUnavailable
from connect_mongodb_example.storage.sql import SqlEventStore, SqlSettings
from tests.support.delivery import deliver
from tests.support.postgres import ThrowawayPostgres, run_sql
from tests.support.records import purchase_record

pytestmark = pytest.mark.postgres

# What generated passwords hold: every character URL quoting must protect, and a %40 that
# must arrive as the three characters %40 (decoding twice would turn it into @).
APP_PASSWORD = 'p@ss/w:rd%40#?x'
ADMIN_PASSWORD = 'adm1n:p@ss/%'


@pytest.fixture(scope='module')
def server():
    try:
        server = ThrowawayPostgres(password=ADMIN_PASSWORD)
        server.start()
    except Exception as error:  # noqa: BLE001 - reported as the skip reason
        pytest.skip(f'no throwaway PostgreSQL with password authentication: {error}')
    yield server
    server.destroy()


@pytest.fixture
def app(server):
    """A user with a generated password, owning a fresh database: (user, database)."""
    user = f'app_{uuid.uuid4().hex[:8]}'
    database = f'events_{uuid.uuid4().hex[:8]}'
    admin = server.url()
    run_sql(admin, sql.SQL('CREATE ROLE {} LOGIN PASSWORD %s').format(sql.Identifier(user)),
            (APP_PASSWORD,))
    run_sql(admin, sql.SQL('CREATE DATABASE {} OWNER {}').format(
        sql.Identifier(database), sql.Identifier(user)))
    yield user, database
    run_sql(admin, sql.SQL('DROP DATABASE {} WITH (FORCE)').format(sql.Identifier(database)))
    run_sql(admin, sql.SQL('DROP ROLE {}').format(sql.Identifier(user)))


def url_of(server, user: str, password: str, database: str) -> str:
    return (f'postgresql://{quote(user, safe="")}:{quote(password, safe="")}'
            f'@127.0.0.1:{server.port}/{database}')


async def test_a_quoted_generated_password_reaches_the_server_decoded(
    server, app, purchase_request,
):
    user, database = app
    store = SqlEventStore(SqlSettings(url_of(server, user, APP_PASSWORD, database), 2))
    record = purchase_record(purchase_request())
    try:
        assert await store.save(record) == 1
        assert await store.save(record) == 2
    finally:
        await store.close()
    rows = run_sql(server.url(database), 'SELECT key, delivery_count FROM connect_events')
    assert rows == [(record.key, 2)]


async def test_a_quoted_socket_directory_host_reaches_libpq_decoded(
    server, app, purchase_request,
):
    """libpq's URL form names a Unix socket directory as a percent-encoded host."""
    user, database = app
    socket_host = quote(server.directory, safe='')
    url = (f'postgresql://{quote(user, safe="")}:{quote(APP_PASSWORD, safe="")}'
           f'@{socket_host}:{server.port}/{database}')
    store = SqlEventStore(SqlSettings(url, 1))
    record = purchase_record(purchase_request())
    try:
        assert await store.save(record) == 1
    finally:
        await store.close()
    assert run_sql(server.url(database), 'SELECT key FROM connect_events') == [(record.key,)]


@pytest.mark.parametrize(('who', 'expected'), [
    ('wrong-password', 'password authentication failed for user'),
    ('unknown-user', 'password authentication failed for user "nobody"'),
    ('missing-database', 'database "no_such_db" does not exist'),
])
async def test_refused_credentials_are_a_configuration_problem(
    server, app, purchase_request, who, expected,
):
    user, database = app
    password = APP_PASSWORD
    if who == 'wrong-password':
        password = 'wrong:p@ss'
    elif who == 'unknown-user':
        user = 'nobody'
    else:
        database = 'no_such_db'
    store = SqlEventStore(SqlSettings(url_of(server, user, password, database), 1))
    try:
        with pytest.raises(ConfigurationError) as raised:
            await store.save(purchase_record(purchase_request()))
    finally:
        await store.close()
    assert raised.value.variable == 'DATABASE_URL'
    assert expected in str(raised.value)
    assert password not in str(raised.value)
    assert quote(password, safe='') not in str(raised.value)


async def test_a_missing_privilege_is_a_configuration_problem(server, app, purchase_request):
    """A user that may connect but not create the table (SQLSTATE 42501)."""
    owner, database = app
    reader = f'reader_{uuid.uuid4().hex[:8]}'
    admin = server.url()
    run_sql(admin, sql.SQL('CREATE ROLE {} LOGIN PASSWORD %s').format(sql.Identifier(reader)),
            (APP_PASSWORD,))
    try:
        store = SqlEventStore(SqlSettings(url_of(server, reader, APP_PASSWORD, database), 1))
        try:
            with pytest.raises(ConfigurationError, match='permission denied for schema public'):
                await store.save(purchase_record(purchase_request()))
        finally:
            await store.close()
        assert run_sql(server.url(database),
                       "SELECT to_regclass('connect_events') IS NULL") == [(True,)]
    finally:
        run_sql(server.url(database), sql.SQL('DROP OWNED BY {}').format(sql.Identifier(reader)))
        run_sql(admin, sql.SQL('DROP ROLE {}').format(sql.Identifier(reader)))


async def test_a_stopped_server_is_still_an_outage(purchase_request):
    stopped = ThrowawayPostgres(password=ADMIN_PASSWORD)
    try:
        store = SqlEventStore(SqlSettings(stopped.url(), 1))
        with pytest.raises(StorageUnavailable):
            await store.save(purchase_record(purchase_request()))
        await store.close()
    finally:
        stopped.destroy()


async def test_the_event_waits_for_the_fix_with_an_error_naming_the_variable(
    server, app, purchase_request, logger, caplog,
):
    """Raised (the runner retries it later), logged at ERROR, never the password."""
    user, database = app
    request = purchase_request()
    wrong = {'DATABASE_URL': url_of(server, user, 'not-it/%', database)}
    with caplog.at_level(logging.INFO), pytest.raises(ConfigurationError):
        await deliver(request, wrong, logger)
    [error] = [entry for entry in caplog.records if entry.levelno >= logging.WARNING]
    assert error.levelno == logging.ERROR
    assert 'DATABASE_URL' in error.getMessage()
    assert 'password authentication failed' in error.getMessage()
    assert 'not-it' not in caplog.text
    assert 'rescheduled' not in caplog.text

    fixed = {'DATABASE_URL': url_of(server, user, APP_PASSWORD, database)}
    response = await deliver(request, fixed, logger)
    assert response.status == 'success'
    assert run_sql(server.url(database), 'SELECT delivery_count FROM connect_events') == [(1,)]


async def test_startup_reports_refused_credentials_as_an_error(server, app, logger, caplog):
    from connect_mongodb_example.extension import StatefulEventsApplication

    user, database = app
    config = {'DATABASE_URL': url_of(server, user, 'not-it/%', database)}
    with caplog.at_level(logging.INFO):
        await StatefulEventsApplication.on_startup(logger, config)
    [error] = [entry for entry in caplog.records if entry.levelno >= logging.WARNING]
    assert error.levelno == logging.ERROR
    assert 'DATABASE_URL' in error.getMessage()
    assert 'not-it' not in caplog.text


async def test_too_many_connections_is_still_an_outage(server, app, purchase_request):
    """SQLSTATE 53300 passes once other sessions end: rescheduled, not a configuration
    problem."""
    user, database = app
    run_sql(server.url(), sql.SQL('ALTER ROLE {} CONNECTION LIMIT 0').format(
        sql.Identifier(user)))
    store = SqlEventStore(SqlSettings(url_of(server, user, APP_PASSWORD, database), 1))
    try:
        with pytest.raises(StorageUnavailable, match='too many connections for role'):
            await store.save(purchase_record(purchase_request()))
    finally:
        await store.close()
