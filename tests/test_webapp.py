"""The web application through eaas-core's WebAppTestClient, on every backend that runs here:
the JSON API, and that it only ever shows the calling installation's events."""
import asyncio
import json
import re
from datetime import timedelta
from typing import Iterator, List

import pytest
from connect.eaas.core.testing.testclient import WebAppTestClient

from connect_mongodb_example.event_views import LISTED_FIELDS, PAGE_COLUMNS
from connect_mongodb_example.installation_record import INSTALLED, UNINSTALLED, InstallationRecord
from connect_mongodb_example.storage import registry
from connect_mongodb_example.storage.registry import close_all
from connect_mongodb_example.webapp import MAX_OFFSET, STATUSES, EventsWebApplication
from tests.storage.mongo_fakes import FakeMongo
from tests.support.delivery import open_stores
from tests.support.web import MINE, T0, THEIRS, Web, links, web_for, web_targets

CHANGES = 50
#: The first event `stored` lists, by the template's own fields: a fork's new fields are
#: listed beside them (every field but the request document and the installation id).
FIRST_LISTED = {
    'key': f'{MINE}/PR-0001:approved:u3', 'request_id': 'PR-0001', 'status': 'approved',
    'updated': 'u3', 'event_type': 'asset_purchase_request_processing',
    'asset_id': 'AS-1234-5678-9012', 'product_id': 'PRD-276-377-545',
    'account_id': 'VA-000-001', 'delivery_count': 1,
    'received_at': '2026-11-20T10:00:03Z', 'last_received_at': '2026-11-20T10:00:03Z',
}
#: The Events page's column headings of the template's own columns.
TEMPLATE_LABELS = {
    'request_id': 'Request', 'status': 'Status', 'updated': 'Updated', 'asset_id': 'Asset',
    'product_id': 'Product', 'account_id': 'Account', 'delivery_count': 'Deliveries',
    'last_received_at': 'Last received',
}
#: What connect-ui-toolkit's fastApiTableAdapter (31.1.0 and later, its
#: dist/tools/fastApi/index.js) reads the total with, for a fork using the toolkit's table.
ADAPTER_TOTAL = re.compile(r'\w+ \d+-\d+\/(\d+)')


@pytest.fixture(params=web_targets())
def web(request) -> Iterator[Web]:
    yield from web_for(request.param, request)


@pytest.fixture
def any_web(request) -> Iterator[Web]:
    """For what happens before any read: one backend is enough."""
    yield from web_for('fake', request)


@pytest.fixture
def stored(web) -> Web:
    """Mine: PR-0001 pending then approved, PR-0002 pending; theirs: PR-0001 (the same
    request, seen by their installation too) and PR-0009; and one with no installation."""
    web.save(MINE, 'PR-0001', 'pending', 1)
    web.save(MINE, 'PR-0002', 'pending', 2)
    web.save(MINE, 'PR-0001', 'approved', 3)
    web.save(THEIRS, 'PR-0001', 'pending', 4)
    web.save(THEIRS, 'PR-0009', 'inquiring', 5)
    web.save(None, 'PR-0010', 'pending', 6)
    return web


def listed(response) -> List[tuple]:
    assert response.status_code == 200, response.text
    return [(item['request_id'], item['status']) for item in response.json()]


# -- GET /api/events --------------------------------------------------------------------------

def test_events_are_the_installations_newest_first(stored):
    response = stored.get('/api/events')
    assert listed(response) == [('PR-0001', 'approved'), ('PR-0002', 'pending'),
                                ('PR-0001', 'pending')]
    assert response.headers['content-range'] == 'items 0-2/3'
    assert response.headers['x-total-count'] == '3'
    assert links(response) == {}  # one page: nothing before or after it
    first = response.json()[0]
    assert set(first) == set(LISTED_FIELDS) >= set(FIRST_LISTED)
    assert not {'request', 'installation_id'} & set(first)
    assert {name: first[name] for name in FIRST_LISTED} == FIRST_LISTED


def test_events_page_with_limit_and_offset(stored):
    """What connect-ui-toolkit's FastAPI table adapter sends (limit, offset = limit x (page -
    1), the filters) and reads (the total at the end of Content-Range) keeps working."""
    response = stored.get('/api/events?limit=2&offset=1')
    assert listed(response) == [('PR-0002', 'pending'), ('PR-0001', 'pending')]
    assert response.headers['content-range'] == 'items 1-2/3'
    assert ADAPTER_TOTAL.match(response.headers['content-range']).group(1) == '3'
    beyond = stored.get('/api/events?limit=2&offset=3')
    assert listed(beyond) == []
    assert beyond.headers['content-range'] == 'items 3-3/3'
    page_two = stored.get('/api/events?limit=2&offset=2&status=')
    assert listed(page_two) == [('PR-0001', 'pending')]
    assert ADAPTER_TOTAL.match(page_two.headers['content-range']).group(1) == '3'


def test_pages_walk_by_cursor_both_ways(stored):
    """Each page links the next (after its last event) and the previous one (before its
    first), with the filters and the page size; walking them visits every event once."""
    for number in range(4, 11):
        stored.save(MINE, f'PR-{number:04d}', 'pending', number * 10)
    everything = [item['key'] for item in stored.get('/api/events?limit=200').json()]
    assert len(everything) == 10

    walked, response, pages = [], stored.get('/api/events?limit=3'), []
    while True:
        assert response.headers['x-total-count'] == '10'
        pages.append([item['key'] for item in response.json()])
        walked.extend(pages[-1])
        if 'next' not in links(response):
            break
        response = stored.get(links(response)['next'])
        # A cursor page cannot know its offset: no Content-Range, the total apart.
        assert 'content-range' not in response.headers
    assert walked == everything
    assert [len(page) for page in pages] == [3, 3, 3, 1]

    # And back from the last page, by the prev links, to the first.
    back = []
    while 'prev' in links(response):
        response = stored.get(links(response)['prev'])
        back.insert(0, [item['key'] for item in response.json()])
    assert back == pages[:-1]
    assert 'limit=3' in links(response)['next']


def test_cursor_links_keep_the_filters(stored):
    for number in range(4, 8):
        stored.save(MINE, f'PR-{number:04d}', 'pending', number * 10)
    first = stored.get('/api/events?status=pending&limit=2')
    assert first.headers['x-total-count'] == '6'
    following = links(first)['next']
    assert 'status=pending' in following
    assert 'limit=2' in following
    second = stored.get(following)
    assert {item['status'] for item in second.json()} == {'pending'}
    assert [item['key'] for item in first.json() + second.json()] == [
        item['key'] for item in stored.get('/api/events?status=pending&limit=4').json()]


def test_a_cursor_keeps_its_place_while_events_arrive(stored):
    """New events come first: a page reached by cursor is the same page, however many."""
    first = stored.get('/api/events?limit=2')
    second = stored.get(links(first)['next'])
    stored.save(MINE, 'PR-0100', 'pending', 100)
    stored.save(MINE, 'PR-0001', 'pending', 101, updated='u1')  # a redelivery
    again = stored.get(links(first)['next'])
    assert listed(again) == listed(second) == [('PR-0001', 'pending')]
    assert again.json()[0]['delivery_count'] == 2
    assert again.headers['x-total-count'] == '4'


def test_offset_pages_are_bounded_and_deeper_pages_use_the_cursor(any_web):
    response = any_web.get('/api/events?offset=9223372036854775808')
    assert response.status_code == 400
    detail = response.json()['detail']
    assert detail.startswith('offset: ')
    assert 'after=' in detail
    assert any_web.get(f'/api/events?offset={MAX_OFFSET + 1}').status_code == 400
    assert any_web.get(f'/api/events?offset={MAX_OFFSET}').status_code == 200


def test_events_filter_by_status_and_request(stored):
    response = stored.get('/api/events?status=pending')
    assert listed(response) == [('PR-0002', 'pending'), ('PR-0001', 'pending')]
    assert response.headers['content-range'] == 'items 0-1/2'
    response = stored.get('/api/events?request_id=PR-0001')
    assert listed(response) == [('PR-0001', 'approved'), ('PR-0001', 'pending')]
    response = stored.get('/api/events?request_id=PR-0001&status=approved')
    assert listed(response) == [('PR-0001', 'approved')]
    # An empty filter is no filter (a table adapter sends `status=` once cleared).
    assert len(stored.get('/api/events?status=&request_id=').json()) == 3


def test_the_request_filter_is_the_whole_id(stored):
    for partial in ('PR-000', 'PR-0001 '[:-2], '0001', 'pr-0001', 'PR-0001-'):
        assert listed(stored.get(f'/api/events?request_id={partial}')) == [], partial
    # Spaces around it are not part of an id (pasted from elsewhere).
    assert len(stored.get('/api/events?request_id=%20PR-0002%20').json()) == 1


def test_no_events_is_an_empty_page(web):
    response = web.get('/api/events')
    assert listed(response) == []
    assert response.headers['content-range'] == 'items 0-0/0'
    assert response.headers['x-total-count'] == '0'


def test_a_redelivery_counts_and_keeps_its_place(stored):
    """Pages are ordered by first receipt: a redelivery does not move an event."""
    stored.save(MINE, 'PR-0001', 'pending', 60, updated='u1')
    response = stored.get('/api/events')
    assert listed(response) == [('PR-0001', 'approved'), ('PR-0002', 'pending'),
                                ('PR-0001', 'pending')]
    last = response.json()[-1]
    assert last['delivery_count'] == 2
    assert last['received_at'] == '2026-11-20T10:00:01Z'
    assert last['last_received_at'] == '2026-11-20T10:01:00Z'
    assert response.headers['content-range'] == 'items 0-2/3'


@pytest.mark.parametrize(('query', 'parameter'), [
    ('status=done', 'status'), ('status=PENDING', 'status'), ('limit=0', 'limit'),
    ('limit=201', 'limit'), ('limit=ten', 'limit'), ('offset=-1', 'offset'),
    ('after=nonsense!', 'after'), ('before=e30', 'before'),
])
def test_bad_parameters_are_refused_naming_them(any_web, query, parameter):
    response = any_web.get(f'/api/events?{query}')
    assert response.status_code in (400, 422)
    assert parameter in json.dumps(response.json())


def test_every_status_of_a_stored_event_type_can_be_filtered_on(any_web):
    from connect_mongodb_example.extension import StatefulEventsApplication
    from connect_mongodb_example.installation_events import INSTALLATION_STATUS_CHANGE

    declared = StatefulEventsApplication.get_events()
    stored = {status for event in declared if event['event_type'] != INSTALLATION_STATUS_CHANGE.name
              for status in event['statuses']}
    assert stored == set(STATUSES)
    for status in sorted(stored):
        response = any_web.get(f'/api/events?status={status}')
        assert response.status_code == 200, (status, response.text)
    # Installation status changes are subscribed to as well, but kept as installation
    # records: no event of the page has their statuses.
    assert INSTALLATION_STATUS_CHANGE.name in {event['event_type'] for event in declared}
    for status in INSTALLATION_STATUS_CHANGE.statuses:
        assert status not in STATUSES
        response = any_web.get(f'/api/events?status={status}')
        assert response.status_code == 400, (status, response.text)


# -- GET /api/schema ---------------------------------------------------------------------------

def test_the_schema_gives_the_page_its_columns_and_statuses(any_web):
    response = any_web.get('/api/schema')
    assert response.status_code == 200, response.text
    schema = response.json()
    fields = {field['name']: field for field in schema['fields']}
    assert list(fields) == list(LISTED_FIELDS)
    assert schema['columns'] == list(PAGE_COLUMNS)
    # Labels: declared beside the field, or derived from its name.
    assert {name: fields[name]['label'] for name in TEMPLATE_LABELS} == TEMPLATE_LABELS
    assert all(fields[name]['label'] for name in schema['columns'])
    assert fields['received_at'] == {'name': 'received_at', 'label': 'First received',
                                     'kind': 'time'}
    assert fields['delivery_count']['kind'] == 'count'
    assert fields['event_type'] == {'name': 'event_type', 'label': 'Event type',
                                    'kind': 'text'}
    assert schema['statuses'] == list(STATUSES)
    assert schema['export_formats'] == ['csv', 'ndjson']


# -- GET /api/requests/{id}/timeline -----------------------------------------------------------

def test_timeline_is_every_status_of_the_request_oldest_first(stored):
    stored.save(MINE, 'PR-0001', 'pending', 30, updated='u1')  # a redelivery
    response = stored.get('/api/requests/PR-0001/timeline')
    assert response.status_code == 200, response.text
    body = response.json()
    assert body['request_id'] == 'PR-0001'
    assert body['events'] == [
        {'status': 'pending', 'updated': 'u1', 'delivery_count': 2,
         'received_at': '2026-11-20T10:00:01Z', 'last_received_at': '2026-11-20T10:00:30Z',
         'event_type': 'asset_purchase_request_processing'},
        {'status': 'approved', 'updated': 'u3', 'delivery_count': 1,
         'received_at': '2026-11-20T10:00:03Z', 'last_received_at': '2026-11-20T10:00:03Z',
         'event_type': 'asset_purchase_request_processing'},
    ]


def test_timeline_of_an_unknown_request_is_404(stored):
    response = stored.get('/api/requests/PR-9999/timeline')
    assert response.status_code == 404
    assert 'PR-9999' in response.json()['detail']


# -- GET /api/installation --------------------------------------------------------------------

def test_the_installation_view_gives_the_data_policy(web):
    response = web.get('/api/installation')
    assert response.status_code == 200, response.text
    assert response.json() == {
        'installation_id': MINE, 'retention_days': None, 'on_uninstall': 'keep',
        'purge_grace_days': 30, 'status': None, 'changed_at': None, 'purge_after': None,
        'purged_at': None,
    }


def test_the_installation_view_says_when_a_purge_is_due(web):
    policy = {**web.config, 'ON_UNINSTALL': 'purge', 'PURGE_GRACE_DAYS': '10',
              'EVENTS_RETENTION_DAYS': '90'}
    web.save_installation(InstallationRecord(
        MINE, UNINSTALLED, T0, account_id='VA-000-001', purge_after=T0 + timedelta(days=10)))
    web.save_installation(InstallationRecord(THEIRS, INSTALLED, T0))
    mine = web.get('/api/installation', config=policy).json()
    assert mine == {
        'installation_id': MINE, 'retention_days': 90, 'on_uninstall': 'purge',
        'purge_grace_days': 10, 'status': 'uninstalled', 'changed_at': '2026-11-20T10:00:00Z',
        'purge_after': '2026-11-30T10:00:00Z', 'purged_at': None,
    }
    theirs = web.get('/api/installation', installation=THEIRS, config=policy).json()
    assert (theirs['status'], theirs['purge_after']) == ('installed', None)

    # Once purged, nothing is due any more.
    web.save_installation(InstallationRecord(
        MINE, UNINSTALLED, T0, purge_after=T0 + timedelta(days=10),
        purged_at=T0 + timedelta(days=10, hours=1)))
    purged = web.get('/api/installation', config=policy).json()
    assert (purged['purge_after'], purged['purged_at']) == (None, '2026-11-30T11:00:00Z')


# -- GET /api/storage --------------------------------------------------------------------------

def test_storage_shows_the_backend_reads_come_from(web):
    response = web.get('/api/storage')
    assert response.status_code == 200, response.text
    body = response.json()
    name = web.config['STORAGE_BACKENDS']
    assert body['reads_from'] == name
    [backend] = body['backends']
    assert backend['name'] == name
    assert backend['reachable'] is True
    assert backend['error'] is None
    assert backend['description'].startswith(name)



@pytest.fixture
def every_backend(request, sqlite_url) -> Iterator[tuple]:
    """(client, the variables of all three backends) with one event stored in each backend
    alone: PR-SQL in SQLite, PR-MONGODB in (fake) MongoDB, PR-DATAAPI behind the Data API."""
    from localdev.dataapi_server import DataApiServer

    FakeMongo().install(request.getfixturevalue('monkeypatch'))
    server = DataApiServer(api_key='read-key')
    with WebAppTestClient(EventsWebApplication) as client:
        client.portal.call(server.start)
        config = {'DATABASE_URL': sqlite_url, 'MONGODB_URI': 'mongodb://127.0.0.1:27017',
                  'DATA_API_URL': server.base_url, 'DATA_API_KEY': 'read-key'}
        try:
            for name in ('sql', 'mongodb', 'dataapi'):
                Web(client, {**config, 'STORAGE_BACKENDS': name}).save(
                    MINE, f'PR-{name.upper()}', 'pending', 1)
            yield client, config
        finally:
            client.portal.call(close_all)
            client.portal.call(server.stop)


@pytest.mark.parametrize('order', ['sql,mongodb,dataapi', 'mongodb,dataapi,sql',
                                   'dataapi,sql,mongodb'])
def test_reads_come_from_the_first_configured_backend(every_backend, order):
    client, config = every_backend
    web = Web(client, {**config, 'STORAGE_BACKENDS': order})
    first = order.split(',')[0]

    assert listed(web.get('/api/events')) == [(f'PR-{first.upper()}', 'pending')]
    assert web.get(f'/api/requests/PR-{first.upper()}/timeline').status_code == 200
    other = order.split(',')[1]
    assert web.get(f'/api/requests/PR-{other.upper()}/timeline').status_code == 404
    storage = web.get('/api/storage').json()
    assert storage['reads_from'] == first
    assert [(backend['name'], backend['reachable']) for backend in storage['backends']] == [
        (name, True) for name in order.split(',')]


FAILING_SECRETS = ('PgS3cret', 'Ssl5ecret', 'M0ngoPw', 'WrongDataKey')


def test_failing_backends_are_shown_briefly_and_without_secrets(caplog):
    """A Data API refusing the key (a configuration problem, found on first use), PostgreSQL
    and MongoDB not answering: every URL and key has a secret that must not show."""
    from localdev.dataapi_server import DataApiServer

    server = DataApiServer(api_key='the-right-key')
    with WebAppTestClient(EventsWebApplication) as client:
        client.portal.call(server.start)
        web = Web(client, {
            'STORAGE_BACKENDS': 'dataapi,sql,mongodb',
            'DATA_API_URL': server.base_url, 'DATA_API_KEY': 'WrongDataKey',
            'DATA_API_RETRIES': '0',
            'DATABASE_URL': 'postgresql://postgres:PgS3cret@127.0.0.1:1/events'
                            '?sslpassword=Ssl5ecret',
            'MONGODB_URI': 'mongodb://reader:M0ngoPw@127.0.0.1:1/?authSource=admin',
            'MONGODB_TIMEOUT_MS': '300',
        })
        try:
            storage = web.get('/api/storage')
            events = web.get('/api/events')
            timeline = web.get('/api/requests/PR-0001/timeline')
        finally:
            client.portal.call(close_all)
            client.portal.call(server.stop)

    assert storage.status_code == 200, storage.text
    backends = storage.json()['backends']
    assert [(backend['name'], backend['reachable']) for backend in backends] == [
        ('dataapi', False), ('sql', False), ('mongodb', False)]
    for backend in backends:
        # A reason of its own: short, and not the description shown beside it again.
        assert 0 < len(backend['error']) <= 200
        assert backend['description'] not in backend['error']
    assert 'DATA_API_KEY' in backends[0]['error']
    for response in (events, timeline):
        # Reads come from the Data API: a configuration problem, not a crash.
        assert response.status_code == 503
        assert 'DATA_API_KEY' in response.json()['detail']
    shown = storage.text + events.text + timeline.text + caplog.text
    assert [secret for secret in FAILING_SECRETS if secret in shown] == []

# -- tenant isolation --------------------------------------------------------------------------

def test_each_installation_sees_only_its_own_events(stored):
    theirs = stored.get('/api/events', installation=THEIRS)
    assert listed(theirs) == [('PR-0009', 'inquiring'), ('PR-0001', 'pending')]
    assert theirs.headers['content-range'] == 'items 0-1/2'
    assert all(item['key'].startswith(f'{THEIRS}/') for item in theirs.json())
    mine = stored.get('/api/events')
    assert all(item['key'].startswith(f'{MINE}/') for item in mine.json())


def test_guessing_another_installations_request_finds_nothing(stored):
    assert stored.get('/api/requests/PR-0009/timeline').status_code == 404
    assert listed(stored.get('/api/events?request_id=PR-0009')) == []
    # A request both installations saw: each one's timeline is its own.
    theirs = stored.get('/api/requests/PR-0001/timeline', installation=THEIRS).json()
    assert [event['status'] for event in theirs['events']] == ['pending']


@pytest.mark.parametrize('forged', [
    'installation_id={theirs}', 'installation={theirs}', 'installation_id={theirs}&limit=50',
])
def test_query_parameters_cannot_choose_the_installation(stored, forged):
    response = stored.get(f'/api/events?{forged.format(theirs=THEIRS)}')
    assert listed(response) == [('PR-0001', 'approved'), ('PR-0002', 'pending'),
                                ('PR-0001', 'pending')]


def test_a_body_cannot_choose_the_installation(stored):
    response = stored.client.request(
        'GET', '/api/events', json={'installation_id': THEIRS}, installation={'id': MINE},
        config=stored.config,
    )
    assert {item['key'].split('/')[0] for item in response.json()} == {MINE}


@pytest.mark.parametrize('path', [
    '/api/events', '/api/events?installation_id=EIN-2222-2222-2222',
    '/api/requests/PR-0001/timeline', '/api/storage',
])
def test_without_an_installation_every_endpoint_refuses(stored, path):
    response = stored.get(path, installation=None)
    assert response.status_code == 400
    assert 'installation' in response.json()['detail']
    assert 'PR-' not in response.text


@pytest.mark.parametrize('headers', [
    # Other headers are not the call context, whatever they say.
    {'X-Connect-Account-Id': 'VA-000-002', 'X-Installation-Id': THEIRS},
    {'X-Connect-Tier-Account-Id': THEIRS, 'Installation': THEIRS},
])
def test_other_headers_cannot_choose_the_installation(stored, headers):
    response = stored.get('/api/events', headers=dict(headers))
    assert {item['key'].split('/')[0] for item in response.json()} == {MINE}
    assert stored.get('/api/events', installation=None, headers=dict(headers)).status_code == 400


def test_two_installation_headers_are_refused(stored):
    """A forwarder that appended the caller's own header to the gateway's must not let the
    caller's win: a context naming two installations is no context."""
    # Past WebAppTestClient's own header handling, which keeps one value per name.
    response = super(WebAppTestClient, stored.client).request('GET', '/api/events', headers=[
        ('X-Connect-Installation-Id', MINE), ('x-connect-installation-id', THEIRS),
        ('X-Connect-Config', json.dumps(stored.config)),
    ])
    assert response.status_code == 400
    assert 'several installations' in response.json()['detail']


def test_blank_installation_is_no_installation(stored):
    response = stored.client.get('/api/events', config=stored.config,
                                 context={'installation_id': '  '})
    assert response.status_code == 400


# -- refused credentials -----------------------------------------------------------------------

@pytest.mark.postgres
def test_refused_credentials_are_reported_as_a_configuration_problem(postgres_server):
    """A database that refuses the configured credentials (here: no such database) is named
    in the answer, as the events application logs it, not a bare 500."""
    url = postgres_server.rsplit('/', 1)[0] + '/no_such_database_for_the_web_app'
    config = {'STORAGE_BACKENDS': 'sql', 'DATABASE_URL': url}
    with WebAppTestClient(EventsWebApplication) as client:
        try:
            for path in ('/api/events', '/api/requests/PR-0001/timeline'):
                response = client.get(path, installation={'id': MINE}, config=config)
                assert response.status_code == 503, response.text
                detail = response.json()['detail']
                assert detail.startswith('configuration problem: DATABASE_URL: ')
                assert 'database "no_such_database_for_the_web_app" does not exist' in detail
            health = client.get('/api/storage', installation={'id': MINE}, config=config)
            [backend] = health.json()['backends']
            assert backend['reachable'] is False
            assert 'does not exist' in backend['error']
        finally:
            client.portal.call(close_all)


# -- changed variables -------------------------------------------------------------------------

def test_changed_variables_leave_one_store_open_in_the_web_worker(tmp_path):
    """The web worker is a process of its own: each Apply Changes gives the installation a
    new store there too, and the old one is closed once its reads are done."""
    with WebAppTestClient(EventsWebApplication) as client:
        try:
            for number in range(CHANGES):
                config = {'STORAGE_BACKENDS': 'sql',
                          'DATABASE_URL': f'sqlite:///{tmp_path}/events{number}.sqlite3'}
                for path in ('/api/events', '/api/storage'):
                    response = client.get(path, installation={'id': MINE}, config=config)
                    assert response.status_code == 200, response.text
                # Another installation's settings stay open beside them.
                other = {'STORAGE_BACKENDS': 'sql',
                         'DATABASE_URL': f'sqlite:///{tmp_path}/theirs.sqlite3'}
                assert client.get('/api/events', installation={'id': THEIRS},
                                  config=other).status_code == 200
                client.portal.call(settle_closes)
                assert sorted(store.describe() for store in open_stores()) == [
                    f'sql (sqlite:///{tmp_path}/events{number}.sqlite3)',
                    f'sql (sqlite:///{tmp_path}/theirs.sqlite3)',
                ]
        finally:
            client.portal.call(close_all)


async def settle_closes() -> None:
    """Superseded stores close in the background: wait for the closes under way."""
    await asyncio.gather(*registry._closing)
