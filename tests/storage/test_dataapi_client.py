"""The Data API client against FerretDB's answers: the local server's `ferretdb` flavour over
real connections, respx for what that server does not produce, and every declared codeName
through `refusal` itself.

FerretDB 2.x answers every failed command with HTTP 500 and its codeName, so the codeName,
not the status, decides between another attempt and an error at once.
"""
import logging

import httpx
import pytest
import respx

from connect_mongodb_example.errors import (
    ConfigurationError,
    DuplicateKey,
    InvalidRequest,
    StorageRejected,
    StorageUnavailable,
)
from connect_mongodb_example.storage import dataapi_client, dataapi_errors
from connect_mongodb_example.storage.dataapi_client import DataApiClient, DataApiSettings
from connect_mongodb_example.storage.dataapi_errors import Answer, refusal
from localdev.dataapi_server import DataApiServer

USER = 'ops'
PASSWORD = 'Fe-pa55word-0123456789'
WHERE = 'dataapi (test)'
FIND = {'filter': {'key': 'a'}, 'projection': {'_id': 0}}
UPSERT = {'filter': {'key': 'a'}, 'update': {'$inc': {'n': 1}}, 'upsert': True}


@pytest.fixture
def sleeps(monkeypatch):
    waited = []

    async def no_wait(seconds):
        waited.append(seconds)

    monkeypatch.setattr(dataapi_client, 'sleep', no_wait)
    return waited


@pytest.fixture
async def ferretdb():
    async with DataApiServer(flavour='ferretdb', user=USER, api_key=PASSWORD) as server:
        yield server


@pytest.fixture
async def connect():
    clients = []

    def connect(url, *, auth='basic', user=USER, key=PASSWORD, retries=2):
        settings = DataApiSettings(
            url=url, key=key, auth=auth, user=user, data_source='mongodb-atlas',
            database='connect_events', collection='events', timeout=5, retries=retries)
        client = DataApiClient(settings, WHERE)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.close()


# -- against the local server, answering as FerretDB -------------------------------------------

async def test_basic_credentials_are_accepted(ferretdb, connect):
    client = connect(ferretdb.base_url)
    assert (await client.post('updateOne', UPSERT))['modifiedCount'] == 0
    assert await client.post('findOne', FIND) == {'document': {'key': 'a', 'n': 1}}


@pytest.mark.parametrize('auth', ['api-key', 'bearer'])
async def test_another_auth_mode_is_a_configuration_error_naming_data_api_auth(
    ferretdb, connect, sleeps, auth,
):
    with pytest.raises(ConfigurationError) as caught:
        await connect(ferretdb.base_url, auth=auth).post('findOne', FIND)
    assert caught.value.variable == 'DATA_API_AUTH'
    message = str(caught.value)
    assert 'HTTP 400 InvalidParameter: no authentication methods were specified' in message
    assert 'this server accepts HTTP Basic only' in message
    assert 'set DATA_API_AUTH=basic and DATA_API_USER' in message
    assert PASSWORD not in message
    assert (ferretdb.requests, sleeps) == (1, [])


@pytest.mark.parametrize(('user', 'key'), [(USER, 'not-the-password'), ('nobody', PASSWORD)])
async def test_refused_credentials_name_the_user_and_key(ferretdb, connect, sleeps, user, key):
    with pytest.raises(ConfigurationError) as caught:
        await connect(ferretdb.base_url, user=user, key=key).post('updateOne', UPSERT)
    assert caught.value.variable == 'DATA_API_KEY'
    message = str(caught.value)
    assert 'HTTP 500 AuthenticationFailed: Authentication failed.' in message
    assert 'check DATA_API_USER and DATA_API_KEY' in message
    assert key not in message
    assert (ferretdb.requests, sleeps) == (1, [])


async def test_an_empty_user_is_a_configuration_error(ferretdb, connect):
    with pytest.raises(ConfigurationError) as caught:
        await connect(ferretdb.base_url, user='').post('findOne', FIND)
    assert caught.value.variable == 'DATA_API_USER'
    assert 'HTTP 400 MissingParameter' in str(caught.value)


async def test_transient_codes_are_retried_then_pass(ferretdb, connect, sleeps):
    ferretdb.fail_next(2, status=500, code='NotWritablePrimary', message='not primary')
    assert await connect(ferretdb.base_url).post('findOne', FIND) == {'document': None}
    assert ferretdb.requests == 3
    assert len(sleeps) == 2


async def test_transient_codes_that_persist_make_the_store_unavailable(
    ferretdb, connect, sleeps, caplog,
):
    ferretdb.fail_next(10, status=500, code='InternalError',
                       message='failed to connect to `user=ferretdb database=postgres`')
    with pytest.raises(StorageUnavailable) as caught:
        await connect(ferretdb.base_url, retries=2).post('updateOne', UPSERT)
    assert str(caught.value) == (
        f'{WHERE}: updateOne failed after 3 attempt(s): HTTP 500 InternalError: failed to '
        'connect to `user=ferretdb database=postgres`')
    assert ferretdb.requests == 3
    assert 'retry 2' in caplog.text


@pytest.mark.parametrize(('code', 'action', 'expected', 'words'), [
    ('InsufficientPrivilege', 'updateOne', ConfigurationError,
     'the user in DATA_API_USER lacks a privilege: updateOne needs the readWrite role on '
     "database 'connect_events'"),
    ('Unauthorized', 'find', ConfigurationError, 'find needs the read role'),
    ('BsonObjectTooLarge', 'updateOne', InvalidRequest,
     'HTTP 500, the request is too large for this server: BsonObjectTooLarge'),
    ('DuplicateKey', 'updateOne', DuplicateKey, 'updateOne: DuplicateKey: refused'),
    ('TypeMismatch', 'updateOne', StorageRejected, 'HTTP 500 TypeMismatch: refused'),
])
async def test_permanent_codes_are_reported_at_once(
    ferretdb, connect, sleeps, code, action, expected, words,
):
    ferretdb.fail_next(1, status=500, code=code, message='refused')
    with pytest.raises(expected) as caught:
        await connect(ferretdb.base_url).post(action, FIND if action == 'find' else UPSERT)
    assert type(caught.value) is expected
    assert words in str(caught.value)
    assert (ferretdb.requests, sleeps) == (1, [])


async def test_a_command_the_server_refuses_is_rejected_at_once(ferretdb, connect, sleeps):
    with pytest.raises(StorageRejected) as caught:
        await connect(ferretdb.base_url).post('find', {'filter': {'$bogus': 1}})
    assert type(caught.value) is StorageRejected
    assert 'HTTP 500 BadValue: unknown top level operator: $bogus' in str(caught.value)
    assert (ferretdb.requests, sleeps) == (1, [])


async def test_the_atlas_flavour_still_answers_401_for_a_wrong_key(connect, sleeps):
    async with DataApiServer(api_key='right-key') as server:
        with pytest.raises(ConfigurationError) as caught:
            await connect(server.base_url, auth='api-key', key='wrong-key').post('findOne', FIND)
    assert caught.value.variable == 'DATA_API_KEY'
    assert 'HTTP 401 InvalidSession' in str(caught.value)
    assert 'wrong-key' not in str(caught.value)


# -- what the local server does not produce -----------------------------------------------------

BASE = 'https://dataapi.example.com'


@pytest.fixture
def api():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.mark.parametrize('failure', [
    # FerretDB's http.Error: "internal error" when its handler answered nothing.
    httpx.Response(500, text='internal error\n', headers={'content-type': 'text/plain'}),
    httpx.Response(500, json={'error': 'canceling statement due to statement timeout',
                              'error_code': 'MaxTimeMSExpired'}),
    httpx.Response(503, json={'error': 'maintenance', 'error_code': 'ServiceUnavailable'}),
    httpx.Response(429, json={'error': 'slow down'}),
])
async def test_passing_failures_are_retried(api, connect, sleeps, failure):
    route = api.post('/action/findOne').mock(
        side_effect=[failure, httpx.Response(200, json={'document': None})])
    assert await connect(BASE).post('findOne', FIND) == {'document': None}
    assert route.call_count == 2


@pytest.mark.parametrize(('status', 'body', 'expected', 'variable'), [
    (401, {'error': 'invalid session', 'error_code': 'InvalidSession'}, ConfigurationError,
     'DATA_API_KEY'),
    (403, {'error_code': 'Forbidden'}, ConfigurationError, 'DATA_API_KEY'),
    (413, {'error': 'body too large'}, InvalidRequest, None),
    (400, {'error': "Invalid parameter(s) specified: 'dataSource'",
           'error_code': 'InvalidParameter'}, StorageRejected, None),
    (409, {'error': 'E11000 duplicate key error', 'error_code': 'DuplicateKey'}, DuplicateKey,
     None),
])
async def test_atlas_style_answers_keep_their_meaning(
    api, connect, sleeps, status, body, expected, variable,
):
    route = api.post('/action/updateOne').mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(expected) as caught:
        await connect(BASE, auth='api-key', key='k').post('updateOne', UPSERT)
    assert type(caught.value) is expected
    assert getattr(caught.value, 'variable', None) == variable
    assert (route.call_count, sleeps) == (1, [])


async def test_a_server_echoing_the_password_in_an_error_does_not_pass_it_on(
    api, connect, caplog,
):
    caplog.set_level(logging.DEBUG)
    api.post('/action/findOne').mock(return_value=httpx.Response(500, json={
        'error': f'SCRAM failed for ops:{PASSWORD}', 'error_code': 'AuthenticationFailed'}))
    with pytest.raises(ConfigurationError) as caught:
        await connect(BASE).post('findOne', FIND)
    assert 'SCRAM failed for ops:***' in str(caught.value)
    assert PASSWORD not in str(caught.value) + caplog.text


# -- every declared codeName -------------------------------------------------------------------

def refused(code, status=500, action='updateOne', auth='basic', message='m'):
    return refusal(Answer(status, code, message, ''), action=action, where=WHERE, auth=auth,
                   database='db')


@pytest.mark.parametrize('code', sorted(dataapi_errors.TRANSIENT_CODES))
def test_every_transient_code_is_retried_whatever_the_status(code):
    assert refused(code) is None
    assert refused(code, status=400) is None


@pytest.mark.parametrize(('codes', 'expected'), [
    (dataapi_errors.CREDENTIAL_CODES, ConfigurationError),
    (dataapi_errors.GRANT_CODES, ConfigurationError),
    (dataapi_errors.TOO_LARGE_CODES, InvalidRequest),
    (dataapi_errors.DUPLICATE_KEY_CODES, DuplicateKey),
    ({'BadValue', 'TypeMismatch', 'CommandNotFound', 'Location16755'}, StorageRejected),
])
def test_every_permanent_code_is_an_error_at_once(codes, expected):
    for code in codes:
        assert type(refused(code)) is expected, code


def test_the_code_lists_do_not_overlap():
    lists = [dataapi_errors.TRANSIENT_CODES, dataapi_errors.CREDENTIAL_CODES,
             dataapi_errors.GRANT_CODES, dataapi_errors.TOO_LARGE_CODES,
             dataapi_errors.DUPLICATE_KEY_CODES]
    assert sum(map(len, lists)) == len(frozenset().union(*lists))


def test_grants_name_the_variable_of_the_auth_mode():
    assert refused('Unauthorized', auth='basic').variable == 'DATA_API_USER'
    assert refused('Unauthorized', auth='api-key').variable == 'DATA_API_KEY'
    assert 'the key in DATA_API_KEY lacks a privilege' in str(refused('Unauthorized',
                                                                       auth='bearer'))


def test_a_bad_request_that_is_not_about_credentials_is_not_blamed_on_them():
    error = refused('InvalidParameter', status=400, auth='api-key', message='bad filter')
    assert type(error) is StorageRejected
    error = refused('InvalidParameter', status=400, auth='api-key',
                    message='no authentication methods were specified')
    assert error.variable == 'DATA_API_AUTH'
    assert 'DATA_API_AUTH is api-key' in str(error)
