"""The web application through the real runner, offline, as a browser sees it.

One real `cextrun` runs both workers: its events worker stores the demo's sample events
(two installations and a single-account event), and its web worker answers the browser
calls the local portal forwards as web tasks, each origin with one installation's call
context. What the API answers is checked against the events delivered; a headless Chromium
then opens the Events page and the table must show them. A third installation gets a few
thousand kilobytes of events written straight into the database: a user pages through them
by cursor and downloads them, in parts that each fit one web-task message.
"""
import asyncio
import csv
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Dict, List

import httpx
import pytest
import pytest_asyncio

from connect_mongodb_example.event_export import PART_BYTES
from connect_mongodb_example.event_record import STORED_FIELDS
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import close_all, stores_for
from localdev.connect_emulator import ConnectEmulator, Event, load_events
from localdev.connect_emulator.portal import LocalPortal
from localdev.connect_emulator.websocket import MAX_MESSAGE_SIZE
from localdev.offline import REPO_ROOT, offline_runner
from localdev.runner_process import log_tail
from tests.support.chromium import Chromium, find_chromium, png_size
from tests.support.events_page import status_options, table_headings, table_rows
from tests.support.records import purchase_record
from tests.support.requests import purchase_request

pytestmark = [
    pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.asyncio(loop_scope='module'),
]

DEMO_EVENTS = load_events(REPO_ROOT / 'demo' / 'events')
#: The demo's own database URL, relative: the runner runs in the test's folder, so the page
#: names its database as `make demo` does, and so does the README screenshot taken here.
DEMO_DATABASE = json.loads((REPO_ROOT / 'demo' / 'variables.json').read_text())['DATABASE_URL']
VENDOR = 'EIN-2761-4185-5524'
DISTRIBUTOR = 'EIN-6110-3827-9413'
VENDOR_REQUEST = 'PR-5852-1608-1176-001'
#: An installation whose events the test writes itself: more than a page, and an export
#: several times the largest web-task message.
BULK = 'EIN-3333-3333-3333'
BULK_EVENTS = 45
BULK_NOTE_BYTES = 100_000
TIMEOUT_SECONDS = 90
#: Set to a path (docs/events-page.png) to keep the browser test's screenshot there.
SCREENSHOT_VARIABLE = 'EVENTS_PAGE_SCREENSHOT'


@dataclass
class Served:
    emulator: ConnectEmulator
    portal: LocalPortal
    client: httpx.AsyncClient
    variables: Dict[str, str]


def expected_events(installation_id: str) -> List[Event]:
    return [event for event in DEMO_EVENTS if event.installation_id == installation_id]


@pytest_asyncio.fixture(scope='module', loop_scope='module')
async def served(tmp_path_factory) -> AsyncIterator[Served]:
    directory = tmp_path_factory.mktemp('web-e2e')
    log = directory / 'runner.log'
    relative = DEMO_DATABASE[len('sqlite:///'):]
    assert DEMO_DATABASE.startswith('sqlite:///')
    assert not relative.startswith('/')
    # The same file, named from this process, whose folder is not the runner's.
    variables = {'DATABASE_URL': f'sqlite:///{directory / relative}'}
    try:
        async with offline_runner(variables={'DATABASE_URL': DEMO_DATABASE}, log_path=log,
                                  cwd=directory, ready_timeout=TIMEOUT_SECONDS) as emulator, \
                LocalPortal(emulator) as portal, \
                httpx.AsyncClient(trust_env=False, timeout=30) as client:
            deliveries = await asyncio.wait_for(
                emulator.deliver_all(DEMO_EVENTS), TIMEOUT_SECONDS,
            )
            assert {result.result for delivery in deliveries for result in delivery.results} \
                == {'success'}
            await asyncio.wait_for(emulator.web.wait_ready(), TIMEOUT_SECONDS)
            yield Served(emulator, portal, client, variables)
            assert emulator.unknown_calls == []
    finally:
        print(log_tail(log, 80))  # shown when a test fails


async def api(served: Served, installation_id: str, path: str, **kwargs) -> httpx.Response:
    origin = await served.portal.installation_origin(installation_id)
    return await served.client.get(f'{origin}/api{path}', **kwargs)


async def test_each_installation_reads_back_exactly_the_events_the_runner_stored(served):
    for installation_id in (VENDOR, DISTRIBUTOR):
        expected = expected_events(installation_id)

        response = await api(served, installation_id, '/events')

        assert response.status_code == 200, response.text
        items = response.json()
        assert response.headers['content-range'] == (
            f'items 0-{len(expected) - 1}/{len(expected)}'
        )
        assert sorted(
            (item['request_id'], item['status'], item['updated'], item['delivery_count'],
             item['account_id'], item['key']) for item in items
        ) == sorted(
            (event.request_id, event.status, event.request['updated'], event.deliveries,
             event.account_id,
             f'{installation_id}/{event.request_id}:{event.status}:{event.request["updated"]}')
            for event in expected
        )
        received = [item['received_at'] for item in items]
        assert received == sorted(received, reverse=True)  # newest first


async def test_paging_and_filters_follow_the_content_range_contract(served):
    page = await api(served, DISTRIBUTOR, '/events', params={'limit': 2, 'offset': 1})
    revoked = await api(served, DISTRIBUTOR, '/events', params={'status': 'revoked'})
    bad = await api(served, DISTRIBUTOR, '/events', params={'status': 'nonsense'})

    assert (len(page.json()), page.headers['content-range']) == (2, 'items 1-2/4')
    assert [item['request_id'] for item in revoked.json()] == ['PR-9035-6621-7480-001']
    assert revoked.headers['content-range'] == 'items 0-0/1'
    assert bad.status_code in (400, 422)
    assert 'status' in bad.text


async def test_pages_follow_their_link_cursors_through_the_runner(served):
    origin = await served.portal.installation_origin(DISTRIBUTOR)
    response = await api(served, DISTRIBUTOR, '/events', params={'limit': 1})
    keys = []
    while True:
        assert response.status_code == 200, response.text
        assert response.headers['x-total-count'] == '4'
        keys.extend(item['key'] for item in response.json())
        following = re.search(r'<([^>]*)>; rel="next"', response.headers.get('link', ''))
        if not following:
            break
        response = await served.client.get(origin + following.group(1))
    everything = await api(served, DISTRIBUTOR, '/events')
    assert keys == [item['key'] for item in everything.json()]


async def test_a_timeline_is_shown_to_its_installation_only(served):
    own = await api(served, VENDOR, f'/requests/{VENDOR_REQUEST}/timeline')
    other = await api(served, DISTRIBUTOR, f'/requests/{VENDOR_REQUEST}/timeline')
    # A caller cannot name the installation: the gateway drops the header, whoever sends it.
    forged = await api(served, DISTRIBUTOR, '/events',
                       headers={'X-Connect-Installation-Id': VENDOR})

    assert own.status_code == 200
    assert [(step['status'], step['delivery_count']) for step in own.json()['events']] == [
        ('pending', 1), ('inquiring', 1), ('approved', 2),
    ]
    assert other.status_code == 404
    assert VENDOR_REQUEST not in {item['request_id'] for item in forged.json()}
    assert len(forged.json()) == len(expected_events(DISTRIBUTOR))


async def test_the_page_and_the_storage_view_come_from_the_runner(served):
    origin = await served.portal.installation_origin(VENDOR)

    root = await served.client.get(f'{origin}/', follow_redirects=False)
    page = await served.client.get(f'{origin}/static/index.html')
    script = await served.client.get(f'{origin}/static/events.js')
    storage = await api(served, VENDOR, '/storage')
    listing = await served.client.get(served.portal.url)

    assert (root.status_code, root.headers['location']) == (302, '/static/index.html')
    assert page.status_code == 200
    assert page.headers['content-type'].startswith('text/html')
    assert '<script type="module" src="events.js">' in page.text
    assert script.headers['content-type'].startswith(('text/javascript', 'application/javascript'))
    assert storage.json()['reads_from'] == 'sql'
    assert [(backend['name'], backend['reachable']) for backend in storage.json()['backends']] \
        == [('sql', True)]
    for installation_id in (VENDOR, DISTRIBUTOR):
        link = await served.portal.page_url(installation_id)
        assert f'<a href="{link}">standalone</a>' in listing.text
        assert f'<a href="/installations/{installation_id}/pages/0">Events</a>' in listing.text


@pytest.fixture(scope='module')
def chromium() -> Chromium:
    executable = find_chromium()
    if executable is None:
        pytest.skip('Chromium is not installed (Debian: apt-get install chromium; .ci/run '
                    'installs it): the Events page was not opened in a browser')
    return Chromium(executable)


async def test_a_browser_shows_the_installation_events_and_a_timeline(
    served, chromium, tmp_path,
):
    url = await served.portal.page_url(VENDOR)

    dom = await chromium.dump_dom(url)

    # The columns and the status filter are the schema's, derived from the declarations.
    schema = (await api(served, VENDOR, '/schema')).json()
    labels = {field['name']: field['label'] for field in schema['fields']}
    assert table_headings(dom) == [labels[name] for name in schema['columns']] == [
        'Request', 'Status', 'Updated', 'Asset', 'Product', 'Account', 'Deliveries',
        'Last received']
    assert status_options(dom) == ['all', *schema['statuses']]
    rows = table_rows(dom)
    expected = expected_events(VENDOR)
    deliveries = schema['columns'].index('delivery_count')
    assert sorted((cells[0], cells[1], cells[deliveries]) for cells in rows.values()) == sorted(
        (event.request_id, event.status, str(event.deliveries)) for event in expected
    )
    assert {'badge badge-pending', 'badge badge-inquiring', 'badge badge-approved'} <= set(
        re.findall(r'class="(badge badge-[a-z]+)"', dom))
    assert '>1-3 of 3<' in dom
    # The backend named once, with where it is, as the demo names it.
    assert f'Reading from sql ({DEMO_DATABASE}): reachable.<' in dom
    assert ('>Data policy: events are kept until deleted; if the extension is uninstalled, '
            'they are kept.<') in dom
    # The request filter says it takes the whole id.
    assert 'Request (whole id)' in dom
    # The toolkit loaded: nothing is said about it (a notice shows only when it cannot load).
    assert '<body data-toolkit="loaded">' in dom
    assert re.search(r'<p id="toolkit" class="notice" hidden=""></p>', dom)
    for event in expected_events(DISTRIBUTOR):
        assert event.request_id not in dom

    # Filters come from the address too: a filtered view can be linked to.
    filtered = table_rows(await chromium.dump_dom(f'{url}?status=approved'))
    assert [(cells[0], cells[1]) for cells in filtered.values()] == [
        (VENDOR_REQUEST, 'approved'),
    ]

    timeline_url = f'{url}#{VENDOR_REQUEST}'
    dom = await chromium.dump_dom(timeline_url)
    steps = re.search(r'<ol id="timeline-steps"[^>]*>(.*?)</ol>', dom, re.DOTALL).group(1)
    assert re.findall(r'badge-([a-z]+)', steps) == ['pending', 'inquiring', 'approved']
    # The card is titled "Timeline"; the request is named once, in the line above the steps.
    assert f'>3 statuses of {VENDOR_REQUEST}, oldest first:<' in dom
    assert f'Timeline of {VENDOR_REQUEST}' not in dom

    # In a portal frame, the page's connect-ui-toolkit bridge answers the portal: it
    # announces itself, gets $init, then reports its size. The portal keeps what it heard
    # to itself (the frame's data-heard), for this test; a user sees only the page.
    framed = f'{served.portal.url}installations/{VENDOR}/pages/0'
    dom = await chromium.dump_dom(framed)
    heard = re.search(r'<iframe id="slot"[^>]*data-heard="([^"]*)"', dom)
    assert heard, dom
    assert {'$created', '$size'} <= set(heard.group(1).split())
    assert 'bridge' not in re.sub(r'<script>.*?</script>', '', dom, flags=re.DOTALL)

    screenshot = tmp_path / 'events-page.png'
    await chromium.screenshot(f'{framed}#{VENDOR_REQUEST}', screenshot, size=(1280, 720))
    assert png_size(screenshot.read_bytes()) == (1280, 720)
    keep = os.environ.get(SCREENSHOT_VARIABLE)
    if keep:
        shutil.copyfile(screenshot, Path(keep))


@pytest_asyncio.fixture(scope='module', loop_scope='module')
async def bulk(served) -> List[str]:
    """BULK_EVENTS events of a third installation, written into the runner's database as the
    events application writes them, each request carrying a note of BULK_NOTE_BYTES; their
    request ids, newest first."""
    installation = {'id': BULK, 'owner': {'id': 'VA-000-003', 'name': 'Vendor Bulk'}}
    served.emulator.objects.put_installation(installation)
    [store] = stores_for(load_settings(served.variables))
    request_ids = []
    try:
        for number in range(BULK_EVENTS):
            request_id = f'PR-3333-{number:04d}-0000-001'
            request = purchase_request(request_id, updated=f'2026-11-20T10:{number:02d}:00+00:00',
                                       note=f'{number:04d}' + 'n' * BULK_NOTE_BYTES)
            await store.save(purchase_record(request, installation=installation))
            request_ids.insert(0, request_id)
    finally:
        await close_all()
    return request_ids


async def test_a_large_export_comes_through_the_runner_in_parts(served, bulk):
    """Every part is one web-task message, under what the runner (and the emulation's
    gateway) accept: the whole export is several times that, and arrives whole."""
    url = f'{await served.portal.installation_origin(BULK)}/api/events/export?format=csv'
    body, sizes = b'', []
    while url:
        response = await served.client.get(url)
        assert response.status_code == 200, response.text
        body += response.content
        sizes.append(len(response.content))
        following = re.search(r'<([^>]*)>; rel="next"', response.headers.get('link', ''))
        url = following and (await served.portal.installation_origin(BULK)) + following.group(1)
    assert len(body) > 2 * MAX_MESSAGE_SIZE
    assert len(sizes) > 2
    assert max(sizes) <= PART_BYTES
    csv.field_size_limit(2 ** 31 - 1)
    rows = list(csv.DictReader(io.StringIO(body.decode('utf-8'))))
    assert [row['request_id'] for row in rows] == bulk
    assert list(rows[0]) == [name for name, _ in STORED_FIELDS]
    assert {row['installation_id'] for row in rows} == {BULK}
    assert json.loads(rows[-1]['request'])['note'].startswith('0000n')


async def test_a_user_pages_by_cursor_and_downloads_everything(served, bulk, chromium, tmp_path):
    downloads = tmp_path / 'downloads'
    downloads.mkdir()
    url = await served.portal.page_url(BULK)
    rows = 'document.querySelectorAll("#rows tr[data-key]")'
    first_cell = 'document.querySelector("#rows tr[data-key] td").textContent'

    async with chromium.session(downloads=downloads) as tab:
        await tab.goto(url)
        assert await tab.wait_for(f'{rows}.length === 20')
        assert await tab.evaluate(first_cell) == bulk[0]
        assert await tab.evaluate('document.getElementById("range").textContent') == (
            f'1-20 of {BULK_EVENTS}')

        await tab.evaluate('document.getElementById("next").click()')
        assert await tab.wait_for(f'{first_cell} === {json.dumps(bulk[20])}')
        await tab.evaluate('document.getElementById("next").click()')
        assert await tab.wait_for(f'{first_cell} === {json.dumps(bulk[40])}')
        assert await tab.evaluate(f'{rows}.length') == BULK_EVENTS - 40
        assert await tab.evaluate('document.getElementById("next").disabled') is True
        await tab.evaluate('document.getElementById("previous").click()')
        assert await tab.wait_for(f'{first_cell} === {json.dumps(bulk[20])}')
        assert await tab.evaluate('document.getElementById("range").textContent') == (
            f'21-40 of {BULK_EVENTS}')

        await tab.evaluate('document.querySelector("#downloads button[data-format=ndjson]")'
                           '.click()')
        assert await tab.wait_for(
            f'document.getElementById("download").dataset.events === "{BULK_EVENTS}"', 90)
        assert await tab.evaluate('document.getElementById("download").textContent') == (
            f'Downloaded {BULK_EVENTS} events as events-{BULK}.ndjson.')
        saved = downloads / f'events-{BULK}.ndjson'
        for _ in range(300):  # the browser writes the file after the page is done with it
            if saved.exists():
                break
            await asyncio.sleep(0.1)
    events = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [event['request_id'] for event in events] == bulk
    assert {event['installation_id'] for event in events} == {BULK}
