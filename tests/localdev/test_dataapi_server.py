"""The local Data-API-compatible server, spoken to directly over HTTP."""
import asyncio
import base64
import datetime
import uuid

import httpx
import pytest
from bson import json_util

from localdev.dataapi_server import BASE_PATH, DataApiServer, main

KEY = 'local-test-key'
TARGET = {'dataSource': 'mongodb-atlas', 'database': 'db', 'collection': 'things'}


@pytest.fixture
async def server():
    async with DataApiServer(api_key=KEY) as server:
        yield server


@pytest.fixture
async def http(server):
    async with httpx.AsyncClient(base_url=server.base_url, headers={'apiKey': KEY}) as client:
        yield client


def basic(user, password):
    return 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode()


async def call(http, action, accept='application/ejson', **body):
    response = await http.post(
        f'/action/{action}',
        content=json_util.dumps({**TARGET, **body}, json_options=json_util.RELAXED_JSON_OPTIONS),
        headers={'Content-Type': 'application/json', 'Accept': accept},
    )
    return response.status_code, json_util.loads(response.text)


async def test_upsert_with_set_on_insert_inc_and_set(server, http):
    moment = datetime.datetime(2026, 11, 20, 10, 15, 3, 123000, tzinfo=datetime.timezone.utc)
    update = {'$setOnInsert': {'first': moment}, '$inc': {'n': 1}, '$set': {'last': moment}}
    status, reply = await call(http, 'updateOne', filter={'k': 'a'}, update=update, upsert=True)
    assert status == 200
    assert (reply['matchedCount'], reply['modifiedCount']) == (0, 0)
    assert reply['upsertedId'] is not None
    later = {**update, '$set': {'last': moment + datetime.timedelta(seconds=5)},
             '$setOnInsert': {'first': moment + datetime.timedelta(days=1)}}
    status, reply = await call(http, 'updateOne', filter={'k': 'a'}, update=later, upsert=True)
    assert reply == {'matchedCount': 1, 'modifiedCount': 1}
    [document] = server.collection('db', 'things').find({}, {'_id': 0})
    assert document == {'k': 'a', 'first': moment, 'n': 2,
                        'last': moment + datetime.timedelta(seconds=5)}


async def test_insert_find_one_and_find_with_sort_and_limit(http):
    for n in (3, 1, 2):
        status, reply = await call(http, 'insertOne', document={'n': n, 'tag': 'x'})
        assert status == 200
        assert reply['insertedId'] is not None
    _, reply = await call(http, 'findOne', filter={'n': 2}, projection={'_id': 0})
    assert reply == {'document': {'n': 2, 'tag': 'x'}}
    _, reply = await call(http, 'findOne', filter={'n': 9})
    assert reply == {'document': None}
    _, reply = await call(http, 'find', filter={'tag': 'x'}, sort={'n': -1}, limit=2,
                          projection={'_id': 0, 'n': 1})
    assert reply == {'documents': [{'n': 3}, {'n': 2}]}


async def test_replies_are_ejson_or_plain_json_as_accepted(http):
    moment = datetime.datetime(2026, 11, 20, 10, 15, 3, 123000, tzinfo=datetime.timezone.utc)
    await call(http, 'insertOne', document={'at': moment})
    response = await http.post('/action/findOne', json={**TARGET, 'filter': {}},
                               headers={'Accept': 'application/json'})
    assert response.headers['content-type'].startswith('application/json')
    document = response.json()['document']
    assert document['at'] == '2026-11-20T10:15:03.123Z'
    assert isinstance(document['_id'], str)
    response = await http.post('/action/findOne', json={**TARGET, 'filter': {}},
                               headers={'Accept': 'application/ejson'})
    assert response.headers['content-type'].startswith('application/ejson')
    assert response.json()['document']['at'] == {'$date': '2026-11-20T10:15:03.123Z'}


@pytest.mark.parametrize(('mode', 'good', 'bad'), [
    ('api-key', {'apiKey': KEY}, {'apiKey': 'nope'}),
    ('api-key', {'api-key': KEY}, {}),
    ('bearer', {'Authorization': f'Bearer {KEY}'}, {'apiKey': KEY}),
    ('basic', {'Authorization': basic('ops', KEY)}, {'Authorization': basic('root', KEY)}),
])
async def test_auth_modes(mode, good, bad):
    body = {**TARGET, 'filter': {}}
    async with DataApiServer(api_key=KEY, auth=mode, user='ops') as server, \
            httpx.AsyncClient(base_url=server.base_url) as client:
        accepted = await client.post('/action/findOne', json=body, headers=good)
        refused = await client.post('/action/findOne', json=body, headers=bad)
    assert accepted.status_code == 200
    assert refused.status_code == 401
    assert refused.json() == {'error': 'invalid session: error finding user for endpoint',
                              'error_code': 'InvalidSession'}


async def test_bad_requests_get_atlas_shaped_errors(server, http):
    response = await http.post('/action/findOne', content='{}',
                               headers={'Content-Type': 'text/plain'})
    assert (response.status_code, response.json()['error_code']) == (400, 'InvalidParameter')
    response = await http.post('/action/findOne', content='{not json',
                               headers={'Content-Type': 'application/json'})
    assert response.status_code == 400
    response = await http.post('/action/findOne', json={'collection': 'c'})
    assert response.json() == {'error': 'database is required', 'error_code': 'MissingParameter'}
    response = await http.post('/action/dropDatabase', json=TARGET)
    assert response.status_code == 404
    server.collection('db', 'things').create_index('k', unique=True)
    await call(http, 'insertOne', document={'k': 1})
    status, reply = await call(http, 'insertOne', document={'k': 1})
    assert (status, reply['error_code']) == (409, 'DuplicateKey')
    assert 'E11000' in reply['error']


async def test_fault_switch_and_restart_on_the_same_port(server, http):
    server.fail_next(2, status=503, retry_after='3')
    for _ in range(2):
        response = await http.post('/action/findOne', json={**TARGET, 'filter': {}})
        assert (response.status_code, response.headers['Retry-After']) == (503, '3')
    await call(http, 'insertOne', document={'kept': True})
    url = server.base_url
    await server.stop()
    with pytest.raises(httpx.ConnectError):
        await http.post('/action/findOne', json={**TARGET, 'filter': {}})
    assert await server.start() == url
    _, reply = await call(http, 'findOne', filter={}, projection={'_id': 0})
    assert reply == {'document': {'kept': True}}
    assert server.requests == 4  # the one sent while stopped never arrived


def test_loopback_only():
    with pytest.raises(ValueError, match='loopback'):
        DataApiServer(host='0.0.0.0')
    with pytest.raises(SystemExit):
        main(['--host', '0.0.0.0'])


# -- the ferretdb flavour: FerretDB 2.x's answers (internal/dataapi/server) ---------------------

@pytest.fixture
async def ferretdb():
    async with DataApiServer(flavour='ferretdb', user='ops', api_key=KEY) as server, \
            httpx.AsyncClient(base_url=server.base_url) as client:
        yield server, client


async def post(client, path, headers=None, body=None, **kwargs):
    return await client.post(path, json={**TARGET, **(body or {'filter': {}})},
                             headers=headers or {}, **kwargs)


async def test_ferretdb_serves_the_actions_at_the_root_with_basic_credentials(ferretdb):
    server, client = ferretdb
    assert server.base_url == f'http://127.0.0.1:{server.port}'
    response = await post(client, '/action/findOne', {'Authorization': basic('ops', KEY)})
    assert (response.status_code, response.json()) == (200, {'document': None})


@pytest.mark.parametrize(('headers', 'status', 'body'), [
    ({}, 400, {'error': 'no authentication methods were specified',
               'error_code': 'InvalidParameter'}),
    ({'apiKey': KEY}, 400, {'error': 'no authentication methods were specified',
                            'error_code': 'InvalidParameter'}),
    ({'Authorization': f'Bearer {KEY}'}, 400, {'error': 'no authentication methods were specified',
                                              'error_code': 'InvalidParameter'}),
    ({'Authorization': basic('ops', '')}, 400, {
        'error': 'must specify some form of authentication (either email+password, api-key, '
                 'or jwt) in the request header or body',
        'error_code': 'MissingParameter'}),
    ({'Authorization': basic('ops', 'wrong')}, 500, {'error': 'Authentication failed.',
                                                    'error_code': 'AuthenticationFailed'}),
    ({'Authorization': basic('root', KEY)}, 500, {'error': 'Authentication failed.',
                                                 'error_code': 'AuthenticationFailed'}),
])
async def test_ferretdb_refuses_credentials_as_ferretdb_does(ferretdb, headers, status, body):
    _, client = ferretdb
    for path in ('/action/findOne', '/action/dropDatabase', '/elsewhere'):
        # Authentication wraps every path, as FerretDB's AuthMiddleware wraps its mux.
        response = await post(client, path, headers)
        assert (response.status_code, response.json()) == (status, body)


async def test_ferretdb_answers_what_it_cannot_run(ferretdb):
    server, client = ferretdb
    auth = {'Authorization': basic('ops', KEY)}
    for path in ('/action/dropDatabase', f'{BASE_PATH}/action/findOne'):
        response = await post(client, path, auth)
        assert (response.status_code, response.text) == (404, '404 page not found\n')
    # A body it cannot decode: http.Error, plain text, 500.
    response = await client.post('/action/findOne', content='{}', headers={
        **auth, 'Content-Type': 'application/ejson'})
    assert (response.status_code, response.text) == (
        500, 'Content-Type must be set to application/json\n')
    # A command that failed: 500 and its codeName.
    response = await post(client, '/action/find', auth, {'filter': {'$bogus': 1}})
    assert (response.status_code, response.json()) == (
        500, {'error': 'unknown top level operator: $bogus', 'error_code': 'BadValue'})
    server.fail_next(1, status=500, code='NotWritablePrimary', message='not primary')
    response = await post(client, '/action/findOne', auth)
    assert (response.status_code, response.json()) == (
        500, {'error': 'not primary', 'error_code': 'NotWritablePrimary'})


async def test_ferretdb_answers_a_duplicate_key_as_a_write_that_did_nothing(ferretdb):
    """Its handlers never read the writeErrors of an ok reply: the error is lost."""
    server, client = ferretdb
    auth = {'Authorization': basic('ops', KEY)}
    server.collection('db', 'things').create_index('k', unique=True)
    await post(client, '/action/insertOne', auth, {'document': {'k': 1, 'v': 'first'}})
    response = await post(client, '/action/insertOne', auth, {'document': {'_id': 7, 'k': 1}})
    assert (response.status_code, response.json()) == (200, {'insertedId': 7})
    # The filter does not match the stored document, the upsert's insert collides.
    response = await post(client, '/action/updateOne', auth, {
        'filter': {'k': 1, 'v': 'other'}, 'update': {'$set': {'k': 1}}, 'upsert': True})
    assert (response.status_code, response.json()) == (
        200, {'matchedCount': 0, 'modifiedCount': 0})
    assert server.collection('db', 'things').count_documents({}) == 1


def test_ferretdb_authenticates_with_basic_only():
    assert DataApiServer(flavour='ferretdb').auth == 'basic'
    with pytest.raises(ValueError, match='auth must be basic for the ferretdb flavour'):
        DataApiServer(flavour='ferretdb', auth='api-key')
    with pytest.raises(SystemExit):
        main(['--flavour', 'ferretdb', '--auth', 'bearer'])


async def test_update_many_delete_one_and_delete_many(server, http):
    for n in range(5):
        await call(http, 'insertOne', document={'n': n, 'tag': 'x' if n < 4 else 'y'})
    status, reply = await call(http, 'updateMany', filter={'tag': 'x'},
                               update={'$set': {'seen': True}, '$unset': {'n': ''}})
    assert (status, reply) == (200, {'matchedCount': 4, 'modifiedCount': 4})
    status, reply = await call(http, 'deleteOne', filter={'tag': 'x'})
    assert (status, reply) == (200, {'deletedCount': 1})
    status, reply = await call(http, 'deleteMany', filter={'tag': 'x'})
    assert (status, reply) == (200, {'deletedCount': 3})
    status, reply = await call(http, 'deleteMany', filter={'tag': 'x'})
    assert (status, reply) == (200, {'deletedCount': 0})
    assert list(server.collection('db', 'things').find({}, {'_id': 0})) == [
        {'n': 4, 'tag': 'y'}]
    # As on Atlas, a delete without a filter is refused rather than emptying the collection.
    status, reply = await call(http, 'deleteMany')
    assert (status, reply['error_code']) == (400, 'InvalidParameter')
    assert server.collection('db', 'things').count_documents({}) == 1


async def test_what_bson_cannot_carry_is_a_bad_request(http):
    status, reply = await call(http, 'find', filter={}, skip=2 ** 63)
    assert (status, reply['error_code']) == (400, 'InvalidParameter')


@pytest.mark.mongodb
async def test_the_data_can_live_in_a_mongodb_server(mongodb_server):
    """With a MongoDB-compatible server behind it, actions run concurrently, and the data is
    the server's: it outlives the local server."""
    from pymongo import MongoClient

    database = f'dataapi_{uuid.uuid4().hex[:8]}'
    target = {**TARGET, 'database': database}
    admin = MongoClient(mongodb_server.admin_uri, tz_aware=True)
    try:
        admin[database]['things'].create_index('k', unique=True)
        async with DataApiServer(api_key=KEY, mongodb_uri=mongodb_server.admin_uri) as server, \
                httpx.AsyncClient(base_url=server.base_url, headers={'apiKey': KEY}) as client:
            assert server.keeps_data

            async def upsert(n):
                body = {**target, 'filter': {'k': n % 5}, 'update': {'$inc': {'count': 1}},
                        'upsert': True}
                for _ in range(2):  # a racing upsert may lose on the unique index once
                    response = await client.post('/action/updateOne', json=body)
                    if response.status_code != 409:
                        return response.status_code
                return response.status_code

            assert set(await asyncio.gather(*(upsert(n) for n in range(40)))) == {200}
            response = await client.post('/action/deleteOne',
                                         json={**target, 'filter': {'k': 0}})
            assert response.json() == {'deletedCount': 1}
            server.close()
        assert sorted((d['k'], d['count']) for d in admin[database]['things'].find()) == [
            (k, 8) for k in range(1, 5)]
    finally:
        admin.drop_database(database)
        admin.close()


def test_the_command_line_takes_a_mongodb_uri(monkeypatch):
    seen = {}

    async def serve(server):
        seen['server'] = server

    monkeypatch.setattr('localdev.dataapi_server._serve', serve)
    main(['--port', '0', '--mongodb-uri', 'mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=1'])
    assert seen['server'].keeps_data
    seen['server'].close()
