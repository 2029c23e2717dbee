"""The Data API (HTTP) backend: configuration, requests, replies, retries and secrecy.

Every branch runs against respx; the last tests run the store against the local
Data-API-compatible server (localdev.dataapi_server) over real connections.
"""
import asyncio
import base64
import json
import logging
import math
from datetime import timedelta, timezone

import httpx
import pytest
import respx
from bson import ObjectId, json_util

from connect_mongodb_example.errors import (
    ConfigurationError,
    InvalidRequest,
    StorageRejected,
    StorageUnavailable,
)
from connect_mongodb_example.event_record import STORED_FIELDS
from connect_mongodb_example.storage import (
    dataapi,
    dataapi_client,
    http_retry,
    mongo_schema,
    mongo_store,
)
from connect_mongodb_example.storage.base import EventFilter
from connect_mongodb_example.storage.dataapi import DataApiEventStore
from connect_mongodb_example.storage.dataapi_client import READ_OPTIONS
from connect_mongodb_example.variables import ConfigReader
from tests.support.records import purchase_record

BASE = 'https://dataapi.example.com/app/data-abcde/endpoint/data/v1'
KEY = 'dapi-K3y$ecret-0123456789'


def settings_from(**config):
    values = {'DATA_API_URL': BASE, 'DATA_API_KEY': KEY, **config}
    return DataApiEventStore.parse_settings(ConfigReader(values))


def ejson(body, status=200, headers=None):
    text = json_util.dumps(body, json_options=json_util.RELAXED_JSON_OPTIONS)
    return httpx.Response(status, text=text, headers={
        'content-type': 'application/ejson', **(headers or {})})


def sent(call):
    """The decoded body of a call, or of a request."""
    request = getattr(call, 'request', call)
    return json_util.loads(request.content, json_options=READ_OPTIONS)


def counted(count):
    return ejson({'document': {'delivery_count': count}})


UPSERTED = {'matchedCount': 0, 'modifiedCount': 0, 'upsertedId': ObjectId()}
#: The schema document of a collection whose schema is current: no migration runs.
CURRENT_SCHEMA = {'_id': 'schema', 'data': mongo_schema.DATA_VERSION}


@pytest.fixture
def api():
    """The Data API, each test mocking the actions it is about; the schema is current."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post('/action/findOne', json__collection='events_schema').mock(
            return_value=ejson({'document': CURRENT_SCHEMA}))
        yield router


def calls_of(api, action):
    """The requests sent for `action`, but the schema check."""
    return [call for call in api.calls if call.request.url.path.endswith(f'/{action}')
            and json.loads(call.request.content).get('collection') != 'events_schema']


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
async def make_store(sleeps, monkeypatch):
    stores = []

    async def no_wait(seconds):
        sleeps.append(seconds)

    monkeypatch.setattr(dataapi_client, 'sleep', no_wait)

    def make(**config):
        store = DataApiEventStore(settings_from(**config))
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
def store(make_store):
    return make_store()


@pytest.fixture
def record(purchase_request, installation):
    return purchase_record(purchase_request(), installation=installation)


# Configuration

def test_defaults_and_tutorial_aliases():
    settings = DataApiEventStore.parse_settings(ConfigReader({
        'DATA_API_ENDPOINT': BASE, 'DATA_API_KEY': KEY, 'CLUSTER': 'Cluster0',
        'DB': 'tutorial', 'HTTP_COLLECTION': 'requests',
    }))
    assert (settings.url, settings.data_source, settings.database, settings.collection) == (
        BASE, 'Cluster0', 'tutorial', 'requests')
    assert (settings.auth, settings.timeout, settings.retries) == ('api-key', 10.0, 3)
    defaults = settings_from()
    assert (defaults.data_source, defaults.database, defaults.collection) == (
        'mongodb-atlas', 'connect_events', 'events')
    assert KEY not in repr(defaults)
    assert KEY not in DataApiEventStore(defaults).describe()


@pytest.mark.parametrize('url', [
    'http://localhost:8081', 'http://127.0.0.1:8081/app/x/endpoint/data/v1', 'http://[::1]:80',
    'http://ferretdb:8080', 'http://data-api_1:8080', 'http://127.0.0.2:8080',
    'http://0x7f000001:8080',
])
def test_plain_http_is_accepted_on_loopback_and_for_service_names(url):
    assert settings_from(DATA_API_URL=url).url == url


@pytest.mark.parametrize(('config', 'variable', 'words'), [
    ({'DATA_API_URL': ''}, 'DATA_API_URL', 'is required'),
    ({'DATA_API_KEY': ''}, 'DATA_API_KEY', 'is required'),
    ({'DATA_API_URL': 'http://dataapi.example.com'}, 'DATA_API_URL', 'https://'),
    ({'DATA_API_URL': 'http://10.0.0.5:8080'}, 'DATA_API_URL', 'unencrypted'),
    ({'DATA_API_URL': 'http://ferretdb.internal:8080'}, 'DATA_API_URL', 'unencrypted'),
    # 8.8.8.8 in disguise: the resolver reads both as IPv4, they are no service names.
    ({'DATA_API_URL': 'http://0x08080808:8080'}, 'DATA_API_URL', 'unencrypted'),
    ({'DATA_API_URL': 'http://8.8.2056'}, 'DATA_API_URL', 'unencrypted'),
    ({'DATA_API_URL': 'ftp://dataapi.example.com'}, 'DATA_API_URL', 'https://'),
    ({'DATA_API_KEY': f'{KEY}\nX-Injected: 1'}, 'DATA_API_KEY', '(value hidden)'),
    ({'DATA_API_KEY': f'{KEY}\x07'}, 'DATA_API_KEY', 'printable ASCII'),
    ({'DATA_API_KEY': f'{KEY}\u00fc'}, 'DATA_API_KEY', 'printable ASCII'),
    ({'DATA_API_URL': f'https://u:{KEY}@dataapi.example.com'}, 'DATA_API_URL', 'DATA_API_KEY'),
    ({'DATA_API_URL': f'{BASE}/action/findOne'}, 'DATA_API_URL', 'base URL'),
    ({'DATA_API_AUTH': 'oauth'}, 'DATA_API_AUTH', 'api-key, bearer, basic'),
    ({'DATA_API_AUTH': 'basic'}, 'DATA_API_USER', 'is required'),
    ({'DATA_API_RETRIES': '50'}, 'DATA_API_RETRIES', 'between'),
    ({'DATA_API_TIMEOUT_SECONDS': 'soon'}, 'DATA_API_TIMEOUT_SECONDS', 'a number'),
])
def test_bad_configuration_is_named_and_the_key_is_not_echoed(config, variable, words):
    with pytest.raises(ConfigurationError) as caught:
        settings_from(**config)
    assert caught.value.variable == variable
    assert words in str(caught.value)
    assert KEY not in str(caught.value)


# Requests

@pytest.mark.parametrize(('mode', 'expected'), [
    ('api-key', {'apikey': KEY}),
    ('bearer', {'authorization': f'Bearer {KEY}'}),
    ('basic', {'authorization': 'Basic ' + base64.b64encode(f'ops:{KEY}'.encode()).decode()}),
])
async def test_each_auth_mode_sends_its_header(api, make_store, record, mode, expected):
    store = make_store(DATA_API_AUTH=mode, DATA_API_USER='ops')
    api.post('/action/updateOne').mock(return_value=ejson(UPSERTED))
    api.post('/action/findOne').mock(return_value=counted(1))
    assert await store.save(record) == 1
    for call in api.calls:
        headers = {name: value for name, value in call.request.headers.items()
                   if name in ('apikey', 'authorization')}
        assert headers == expected


async def test_update_is_an_ejson_upsert_then_the_count_is_read(api, store, record):
    update = api.post('/action/updateOne').mock(return_value=ejson(UPSERTED))
    find_one = api.post('/action/findOne').mock(return_value=counted(1))
    assert await store.save(record) == 1

    request = update.calls[0].request
    assert request.headers['content-type'] == 'application/json'
    assert 'application/ejson' in request.headers['accept']
    raw = json.loads(request.content)
    # Dates travel as EJSON dates, not strings, so that they are stored as BSON dates.
    assert set(raw['update']['$max']['last_received_at']) == {'$date'}
    assert raw['update']['$setOnInsert']['received_at']['$date'].endswith('Z')
    body = sent(update.calls[0])
    marker = body['update']['$setOnInsert'].pop('counting')
    assert isinstance(marker, ObjectId)
    millisecond = record.received_at.replace(
        microsecond=record.received_at.microsecond // 1000 * 1000)
    assert body == {
        'dataSource': 'mongodb-atlas', 'database': 'connect_events', 'collection': 'events',
        'filter': {'key': record.key},
        'update': {
            # Every declared field but those a redelivery changes, as the record has it.
            '$setOnInsert': {**{name: getattr(record, name) for name, _ in STORED_FIELDS
                                if name not in ('delivery_count', 'last_received_at')},
                             'received_at': millisecond},
            '$inc': {'delivery_count': 1},
            '$max': {'last_received_at': millisecond},
        },
        'upsert': True,
    }
    assert sent(find_one.calls.last) == {
        'dataSource': 'mongodb-atlas', 'database': 'connect_events', 'collection': 'events',
        'filter': {'key': record.key},
        'projection': {'_id': False, 'delivery_count': True, 'counting': True},
    }
    # The document read back carries no marker of this save: another one created it.
    assert update.call_count == 1


async def test_the_save_that_created_an_event_counts_it_then_removes_its_marker(
    api, store, record,
):
    update = api.post('/action/updateOne').mock(return_value=ejson(UPSERTED))

    def read_back(request):
        upsert = sent(update.calls[0])
        return ejson({'document': {'delivery_count': 1,
                                   'counting': upsert['update']['$setOnInsert']['counting']}})

    api.post('/action/findOne').mock(side_effect=read_back)
    assert await store.save(record) == 1
    upsert, count, unmark = (sent(call) for call in update.calls)
    marker = upsert['update']['$setOnInsert']['counting']
    assert (count['collection'], count['filter'], count['update'], count['upsert']) == (
        'events_counts', {'_id': '["EIN-8436-7221-1234","pending"]'},
        {'$inc': {'events': 1, 'version': 1},
         '$setOnInsert': {'installation_id': 'EIN-8436-7221-1234', 'status': 'pending'}},
        True)
    assert (unmark['collection'], unmark['filter'], unmark['update']) == (
        'events', {'key': record.key, 'counting': marker}, {'$unset': {'counting': ''}})


async def test_a_marker_read_back_as_plain_json_is_recognised(api, store, record):
    """FerretDB's Data API answers plain JSON: the marker comes back as the ObjectId's hex."""
    update = api.post('/action/updateOne').mock(return_value=ejson(UPSERTED))

    def read_back(request):
        marker = sent(update.calls[0])['update']['$setOnInsert']['counting']
        return httpx.Response(200, json={'document': {'delivery_count': 1,
                                                      'counting': str(marker)}})

    api.post('/action/findOne').mock(side_effect=read_back)
    assert await store.save(record) == 1
    assert [sent(call)['collection'] for call in update.calls] == [
        'events', 'events_counts', 'events']


async def test_a_delete_reply_without_its_count_stops_the_delete(api, store):
    def find(request):
        body = sent(request)
        selecting = body['collection'] == 'events' and body['filter'].get('installation_id')
        return ejson({'documents': [
            {'_id': ObjectId(), 'installation_id': 'EIN-A', 'status': 'pending'},
        ] if selecting else []})  # the batch; nothing for the repairs

    api.post('/action/find').mock(side_effect=find)
    api.post('/action/findOne').mock(return_value=ejson({'document': None}))
    api.post('/action/insertOne').mock(return_value=ejson({'insertedId': 'lease'}))
    api.post('/action/deleteMany').mock(return_value=ejson({'acknowledged': True}))
    with pytest.raises(StorageRejected, match='no deletedCount'):
        await store.delete_events(limit=10, installation_id='EIN-A')
    # Nothing taken off a count it cannot know: the lease stays for the repair.
    assert calls_of(api, 'updateOne') == []


async def test_a_page_past_what_bson_carries_is_a_bad_request_sent_nowhere(api, store):
    with pytest.raises(InvalidRequest, match='offset must be a whole number'):
        await store.list_events(EventFilter('EIN-A'), limit=10, offset=2 ** 63)
    with pytest.raises(InvalidRequest, match='limit'):
        await store.list_events(EventFilter('EIN-A'), limit=-1)
    assert calls_of(api, 'find') == []


@pytest.mark.parametrize('reply', [
    UPSERTED,                                                      # Atlas, new document
    {'matchedCount': 1, 'modifiedCount': 1},                       # Atlas, redelivery
    {'matchedCount': 1, 'modifiedCount': 0, 'upsertedId': 'abc'},  # FerretDB, new document
    {'n': 1},                                                      # raw command result
    {'insertedId': {'$oid': '6b0474f4b83a82ebfa5227f0'}},
    {},                                                            # unknown: trust the read
])
async def test_update_reply_variants_are_accepted(api, store, record, reply):
    api.post('/action/updateOne').mock(return_value=ejson(reply))
    api.post('/action/findOne').mock(return_value=counted(4))
    assert await store.save(record) == 4


async def test_an_update_that_wrote_nothing_lost_a_race_and_is_retried_once(
    api, store, record,
):
    """FerretDB 2.x answers an upsert that lost the race on the unique key with 200 and zero
    counts (it drops the write error): the retried update matches the racing insert."""
    lost = ejson({'matchedCount': 0, 'modifiedCount': 0})
    route = api.post('/action/updateOne').mock(side_effect=[
        lost, ejson({'matchedCount': 1, 'modifiedCount': 1})])
    api.post('/action/findOne').mock(return_value=counted(2))
    assert await store.save(record) == 2
    assert route.call_count == 2


async def test_an_update_that_writes_nothing_twice_is_rejected(api, store, record):
    api.post('/action/updateOne').mock(return_value=ejson({'matchedCount': 0,
                                                           'modifiedCount': 0}))
    with pytest.raises(StorageRejected, match='matched and inserted nothing'):
        await store.save(record)


@pytest.mark.parametrize('count', [
    '{"$numberInt": "7"}', '{"$numberLong": "7"}', '7', '7.0',
])
async def test_count_reply_variants(api, store, record, count):
    api.post('/action/updateOne').mock(return_value=ejson(UPSERTED))
    api.post('/action/findOne').mock(return_value=httpx.Response(
        200, text=f'{{"document": {{"delivery_count": {count}}}}}',
        headers={'content-type': 'application/json'}))
    assert await store.save(record) == 7


async def test_a_write_that_cannot_be_read_back_is_retried_later(api, store, record):
    api.post('/action/updateOne').mock(return_value=ejson(UPSERTED))
    api.post('/action/findOne').mock(return_value=ejson({'document': None}))
    with pytest.raises(StorageUnavailable, match='could not be read back'):
        await store.save(record)


async def test_find_reads_ejson_and_plain_json_documents(api, store, record):
    stored = {
        'key': record.key, 'request_id': record.request_id, 'status': 'pending',
        'updated': record.updated, 'event_type': record.event_type,
        'installation_id': 'EIN-8436-7221-1234', 'delivery_count': 2,
        'received_at': record.received_at, 'last_received_at': record.received_at,
        'request': record.request, '_id': ObjectId(),
    }
    plain = {**stored, 'status': 'approved', '_id': 'abc',
             'received_at': '2026-11-20T10:15:03.123Z', 'last_received_at': None}
    text = json_util.dumps({'documents': [stored]}, json_options=json_util.RELAXED_JSON_OPTIONS)
    text = text[:-2] + ', ' + json.dumps(plain) + ']}'
    route = api.post('/action/find').mock(return_value=httpx.Response(200, text=text))
    first, second = await store.find(record.request_id, 'EIN-8436-7221-1234')
    assert sent(route.calls.last)['filter'] == {
        'request_id': record.request_id, 'installation_id': 'EIN-8436-7221-1234'}
    assert sent(route.calls.last)['sort'] == {'received_at': 1, '_id': 1}
    assert (first.status, first.delivery_count, first.request) == ('pending', 2, record.request)
    assert abs(first.received_at - record.received_at) < timedelta(milliseconds=1)
    assert second.received_at.tzinfo == timezone.utc
    assert second.last_received_at == second.received_at
    assert sent(route.calls.last).get('limit') == mongo_store.FIND_LIMIT


async def test_ping_reads_one_document(api, store):
    route = api.post('/action/findOne').mock(return_value=ejson({'document': None}))
    await store.ping()
    assert sent(route.calls.last)['filter'] == dataapi.PING_FILTER


async def test_one_pooled_client_per_store_closed_on_close(api, store, record):
    api.post('/action/updateOne').mock(return_value=ejson(UPSERTED))
    api.post('/action/findOne').mock(return_value=counted(1))
    await store.save(record)
    client = store._api._client
    await store.save(record)
    assert store._api._client is client
    assert client.timeout == httpx.Timeout(10.0)
    await store.close()
    assert client.is_closed
    assert store._api._client is None


# Retries

@pytest.mark.parametrize('failure', [
    httpx.ConnectError('connection refused'),
    httpx.ConnectTimeout('connect timed out'),
    httpx.ReadTimeout('read timed out'),
    httpx.RemoteProtocolError('server disconnected without a response'),
    ejson({'error': 'busy', 'error_code': 'ServiceUnavailable'}, status=503),
    ejson({'error': 'too many requests', 'error_code': 'TooManyRequests'}, status=429),
    httpx.Response(502, text='<html>Bad gateway</html>'),
])
async def test_transient_failures_are_retried_then_succeed(api, store, record, sleeps,
                                                           failure):
    route = api.post('/action/updateOne').mock(side_effect=[failure, failure, ejson(UPSERTED)])
    api.post('/action/findOne').mock(return_value=counted(1))
    assert await store.save(record) == 1
    assert route.call_count == 3
    # Exponential with jitter: each wait is within [half, all] of its growing ceiling.
    assert len(sleeps) == 2
    assert 0.1 <= sleeps[0] <= 0.2
    assert 0.2 <= sleeps[1] <= 0.4


@pytest.mark.parametrize(('header', 'expected'), [
    ('2', 2.0), ('0.5', 0.5), ('3600', http_retry.RETRY_AFTER_CAP_SECONDS),
    ('Wed, 21 Oct 2015 07:28:00 GMT', 0.0),  # a date already past: retry now
])
async def test_retry_after_is_respected_and_capped(api, store, record, sleeps, header,
                                                   expected):
    api.post('/action/updateOne').mock(side_effect=[
        ejson({'error': 'slow down'}, status=429, headers={'Retry-After': header}),
        ejson(UPSERTED),
    ])
    api.post('/action/findOne').mock(return_value=counted(1))
    assert await store.save(record) == 1
    assert sleeps == [expected]


@pytest.mark.parametrize('header', ['nan', 'NaN', 'inf', '-inf'])
async def test_a_retry_after_that_is_not_a_number_falls_back_to_backoff(
    api, store, record, sleeps, header,
):
    api.post('/action/updateOne').mock(side_effect=[
        ejson({'error': 'slow down'}, status=429, headers={'Retry-After': header}),
        ejson(UPSERTED),
    ])
    api.post('/action/findOne').mock(return_value=counted(1))
    assert await store.save(record) == 1
    [wait] = sleeps
    assert math.isfinite(wait)
    assert 0.1 <= wait <= 0.2  # the first backoff step


async def test_backoff_is_capped(make_store, api, record, sleeps):
    store = make_store(DATA_API_RETRIES='10')
    api.post('/action/updateOne').mock(return_value=httpx.Response(503))
    with pytest.raises(StorageUnavailable):
        await store.save(record)
    assert len(sleeps) == 10
    assert max(sleeps) <= http_retry.BACKOFF_CAP_SECONDS
    assert sleeps[-1] >= http_retry.BACKOFF_CAP_SECONDS / 2


@pytest.mark.parametrize(('retries', 'calls'), [('3', 4), ('0', 1)])
async def test_exhausted_retries_make_the_store_unavailable(make_store, api, record, retries,
                                                            calls):
    store = make_store(DATA_API_RETRIES=retries)
    route = api.post('/action/updateOne').mock(return_value=ejson(
        {'error': 'maintenance', 'error_code': 'ServiceUnavailable'}, status=503))
    with pytest.raises(StorageUnavailable) as caught:
        await store.save(record)
    assert route.call_count == calls
    message = str(caught.value)
    assert f'after {calls} attempt(s)' in message
    assert 'HTTP 503 ServiceUnavailable: maintenance' in message
    assert store.describe() in message
    assert KEY not in message


# Refusals

@pytest.mark.parametrize(('status', 'body', 'words', 'expected'), [
    (401, {'error': 'invalid session: error finding user for endpoint',
           'error_code': 'InvalidSession'},
     'HTTP 401 InvalidSession: invalid session: error finding user for endpoint; check '
     'DATA_API_KEY', ConfigurationError),
    (400, {'error': "Invalid parameter(s) specified: 'dataSource'",
           'error_code': 'InvalidParameter'},
     "HTTP 400 InvalidParameter: Invalid parameter(s) specified: 'dataSource'", StorageRejected),
    (404, {'error': 'no matching rule found', 'error_code': 'NoMatchingRuleFound'},
     'HTTP 404 NoMatchingRuleFound', StorageRejected),
    (403, {'error_code': 'Forbidden'}, 'HTTP 403 Forbidden; check DATA_API_KEY',
     ConfigurationError),
])
async def test_client_errors_are_rejections_with_the_servers_explanation(
    api, store, record, status, body, words, expected,
):
    """Refused credentials (401, 403) are a configuration problem naming DATA_API_KEY."""
    route = api.post('/action/updateOne').mock(return_value=ejson(body, status=status))
    with pytest.raises(expected) as caught:
        await store.save(record)
    assert words in str(caught.value)
    assert route.call_count == 1  # never retried
    assert KEY not in str(caught.value)
    if expected is ConfigurationError:
        assert caught.value.variable == 'DATA_API_KEY'


async def test_a_body_too_large_for_the_server_can_never_be_stored(api, store, record):
    route = api.post('/action/updateOne').mock(return_value=httpx.Response(
        413, text='Maximum request body size 1048576 exceeded'))
    with pytest.raises(InvalidRequest, match='HTTP 413, the request is too large'):
        await store.save(record)
    assert route.call_count == 1


async def test_a_server_echoing_the_key_does_not_put_it_in_the_message(api, store, record):
    api.post('/action/updateOne').mock(return_value=httpx.Response(
        401, text=f'bad credentials: apiKey={KEY}'))
    with pytest.raises(ConfigurationError) as caught:
        await store.save(record)
    assert 'bad credentials' in str(caught.value)
    assert KEY not in str(caught.value)


async def test_duplicate_key_from_a_racing_upsert_is_retried_once(api, store, record):
    route = api.post('/action/updateOne').mock(side_effect=[
        ejson({'error': 'E11000 duplicate key error collection: connect_events.events',
               'error_code': 'DuplicateKey'}, status=409),
        ejson({'matchedCount': 1, 'modifiedCount': 1}),
    ])
    api.post('/action/findOne').mock(return_value=counted(2))
    assert await store.save(record) == 2
    assert route.call_count == 2


async def test_redirects_are_not_followed(api, store, record):
    route = api.post('/action/updateOne').mock(return_value=httpx.Response(
        302, headers={'location': 'https://elsewhere.example.net/v1/action/updateOne'}))
    with pytest.raises(StorageRejected, match='redirected to .*elsewhere'):
        await store.save(record)
    assert route.call_count == 1
    assert len(api.calls) == 2  # the schema check, and the refused update


async def test_a_reply_that_is_not_json_is_rejected(api, store, record):
    api.post('/action/updateOne').mock(return_value=httpx.Response(
        200, text='<html>Welcome</html>', headers={'content-type': 'text/html'}))
    with pytest.raises(StorageRejected, match='not a JSON object .*text/html'):
        await store.save(record)


async def test_key_never_reaches_the_logs(api, store, record, caplog):
    caplog.set_level(logging.DEBUG)
    api.post('/action/updateOne').mock(side_effect=[
        httpx.ConnectError('connection refused'), ejson(UPSERTED),
    ])
    api.post('/action/findOne').mock(return_value=ejson({'error_code': 'Unauthorized'}, 401))
    with pytest.raises(ConfigurationError):
        await store.save(record)
    assert 'retry 1' in caplog.text
    assert 'HTTP Request: POST' in caplog.text  # httpx's own request log was captured
    assert KEY not in caplog.text


async def test_a_request_that_cannot_be_sent_is_rejected_without_the_key(
    api, store, record, caplog,
):
    # h11 quotes the offending header value, bytes repr and all.
    caplog.set_level(logging.DEBUG)
    route = api.post('/action/updateOne').mock(side_effect=httpx.LocalProtocolError(
        f'Illegal header value {KEY.encode()!r}'))
    with pytest.raises(StorageRejected) as caught:
        await store.save(record)
    assert str(caught.value) == (
        f"{store.describe()}: updateOne could not be sent: LocalProtocolError Illegal header "
        f"value b'***'")
    assert route.call_count == 1  # it would fail alike: never retried
    assert KEY not in str(caught.value)
    assert KEY not in caplog.text


def test_the_key_is_masked_however_a_message_quotes_it(make_store):
    key = 'k\\ey\'"with-quotes'
    store = make_store(DATA_API_KEY=key)
    for text in (key, repr(key), repr(key.encode()), f'{key!r} and {key.encode()!r}'):
        masked = store._api._redact(text)
        assert key not in masked
        assert 'ey' not in masked


# Against the local Data-API-compatible server, over real connections

@pytest.fixture
async def server():
    from localdev.dataapi_server import DataApiServer

    async with DataApiServer(api_key=KEY) as server:
        yield server


async def test_pooled_connections_are_reused(server, make_store, purchase_request, caplog):
    caplog.set_level(logging.DEBUG)
    store = make_store(DATA_API_URL=server.base_url)
    redelivered = purchase_record(purchase_request())
    assert [await store.save(redelivered) for _ in range(10)] == list(range(1, 11))
    records = [purchase_record(purchase_request(f'PR-0000-0000-0000-{i:03d}')) for i in range(50)]
    assert await asyncio.gather(*(store.save(r) for r in records)) == [1] * 50

    stored = {d['key']: d for d in server.collection('connect_events', 'events').find()}
    assert len(stored) == 51
    assert stored[redelivered.key]['delivery_count'] == 10
    assert stored[redelivered.key]['received_at'] == redelivered.received_at.replace(
        microsecond=redelivered.received_at.microsecond // 1000 * 1000)
    assert stored[redelivered.key]['request'] == purchase_request()
    assert {stored[r.key]['delivery_count'] for r in records} == {1}
    [found] = await store.find(redelivered.request_id)
    assert found.delivery_count == 10

    # 128 requests, 50 of them at once, over at most one pool's worth of connections: 7 to
    # meet the fresh collection (read its schema, migrate under the lock, read it again),
    # then two per save, and the find...
    assert server.requests == 7 + 10 * 2 + 50 * 2 + 1
    used = set(server.connections)
    assert 1 <= len(used) <= dataapi_client.MAX_CONNECTIONS
    # ...and sequential requests afterwards open none.
    for _ in range(5):
        await store.save(redelivered)
    assert server.connections == used
    assert 'send_request_headers' in caplog.text  # httpcore's DEBUG log was captured
    assert KEY not in caplog.text


@pytest.mark.parametrize('mode', ['api-key', 'bearer', 'basic'])
async def test_each_auth_mode_against_the_server(make_store, record, mode):
    from localdev.dataapi_server import DataApiServer

    async with DataApiServer(api_key=KEY, auth=mode, user='ops') as server:
        store = make_store(DATA_API_URL=server.base_url, DATA_API_AUTH=mode,
                           DATA_API_USER='ops')
        assert await store.save(record) == 1
        wrong = make_store(DATA_API_URL=server.base_url, DATA_API_AUTH=mode,
                           DATA_API_USER='ops', DATA_API_KEY='not-the-key')
        with pytest.raises(ConfigurationError, match='HTTP 401 InvalidSession'):
            await wrong.save(record)
        assert server.collection('connect_events', 'events').count_documents({}) == 1


async def test_an_eight_megabyte_request_is_stored_whole(server, make_store, purchase_request):
    store = make_store(DATA_API_URL=server.base_url)
    # 8 MB as UTF-8; as 6-byte \u escapes it would exceed the server's 20 MB limit.
    request = purchase_request(note='ü' * (4 * 1024 * 1024))
    assert await store.save(purchase_record(request)) == 1
    [document] = server.collection('connect_events', 'events').find()
    assert document['request'] == request
    [found] = await store.find(request['id'])
    assert found.request == request


async def test_server_faults_are_retried(server, make_store, record, sleeps):
    store = make_store(DATA_API_URL=server.base_url)
    server.fail_next(2, status=503, retry_after='1')
    assert await store.save(record) == 1
    assert sleeps == [1.0, 1.0]
    [document] = server.collection('connect_events', 'events').find()
    assert document['delivery_count'] == 1


@pytest.mark.mongodb
async def test_what_a_caller_sends_is_answered_over_a_real_server(
    mongodb_server, purchase_request,
):
    """Through the local server over a MongoDB server: odd text matches nothing, and a page
    past what BSON carries is a bad request, never a server error."""
    from tests.storage import mongo_targets

    async with mongo_targets.target_stores('dataapi', mongodb_server) as make:
        store = make()
        await store.save(purchase_record(purchase_request(), installation={'id': 'EIN-A'}))
        for odd in ('\ud800', 'PR-\x00', 'x' * 10_000, '$where'):
            assert await store.list_events(EventFilter('EIN-A', request_id=odd), limit=5) == []
            assert await store.count_events(EventFilter('EIN-A', request_id=odd)) == 0
            assert await store.count_events(EventFilter(odd)) == 0
            assert await store.find(odd) == []
        with pytest.raises(InvalidRequest):
            await store.list_events(EventFilter('EIN-A'), limit=5, offset=2 ** 63)
        assert await store.count_events(EventFilter('EIN-A')) == 1
