"""The local Data-API-compatible server, spoken to directly over HTTP."""
import base64
import datetime

import httpx
import pytest
from bson import json_util

from localdev.dataapi_server import DataApiServer, main

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
