"""The web application through the real runner, offline, as a browser sees it.

One real `cextrun` runs both workers: its events worker stores the demo's sample events
(two installations and a single-account event), and its web worker answers the browser
calls the local portal forwards as web tasks, each origin with one installation's call
context. What the API answers is checked against the events delivered; a headless Chromium
then opens the Events page and the table must show them.
"""
import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Dict, List

import httpx
import pytest
import pytest_asyncio

from localdev.connect_emulator import ConnectEmulator, Event, load_events
from localdev.connect_emulator.portal import LocalPortal
from localdev.offline import REPO_ROOT, offline_runner
from localdev.runner_process import log_tail
from tests.support.chromium import Chromium, find_chromium, png_size

pytestmark = [
    pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.asyncio(loop_scope='module'),
]

DEMO_EVENTS = load_events(REPO_ROOT / 'demo' / 'events')
VENDOR = 'EIN-2761-4185-5524'
DISTRIBUTOR = 'EIN-6110-3827-9413'
VENDOR_REQUEST = 'PR-5852-1608-1176-001'
TIMEOUT_SECONDS = 90
#: Set to a path (docs/events-page.png) to keep the browser test's screenshot there.
SCREENSHOT_VARIABLE = 'EVENTS_PAGE_SCREENSHOT'


@dataclass
class Served:
    emulator: ConnectEmulator
    portal: LocalPortal
    client: httpx.AsyncClient


def expected_events(installation_id: str) -> List[Event]:
    return [event for event in DEMO_EVENTS if event.installation_id == installation_id]


@pytest_asyncio.fixture(scope='module', loop_scope='module')
async def served(tmp_path_factory) -> AsyncIterator[Served]:
    directory = tmp_path_factory.mktemp('web-e2e')
    log = directory / 'runner.log'
    variables = {'DATABASE_URL': f'sqlite:///{directory}/events.sqlite3'}
    try:
        async with offline_runner(variables=variables, log_path=log,
                                  ready_timeout=TIMEOUT_SECONDS) as emulator, \
                LocalPortal(emulator) as portal, \
                httpx.AsyncClient(trust_env=False, timeout=30) as client:
            deliveries = await asyncio.wait_for(
                emulator.deliver_all(DEMO_EVENTS), TIMEOUT_SECONDS,
            )
            assert {result.result for delivery in deliveries for result in delivery.results} \
                == {'success'}
            await asyncio.wait_for(emulator.web.wait_ready(), TIMEOUT_SECONDS)
            yield Served(emulator, portal, client)
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
        received = [item['last_received_at'] for item in items]
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


def table_rows(dom: str) -> Dict[str, List[str]]:
    """Key of each row of the events table -> the text of its cells."""
    rows = {}
    for key, body in re.findall(r'<tr data-key="([^"]+)">(.*?)</tr>', dom, re.DOTALL):
        rows[key] = [re.sub(r'<[^>]+>', '', cell).strip()
                     for cell in re.findall(r'<td>(.*?)</td>', body, re.DOTALL)]
    return rows


async def test_a_browser_shows_the_installation_events_and_a_timeline(
    served, chromium, tmp_path,
):
    url = await served.portal.page_url(VENDOR)

    dom = await chromium.dump_dom(url)

    rows = table_rows(dom)
    expected = expected_events(VENDOR)
    assert sorted((cells[0], cells[1], cells[6]) for cells in rows.values()) == sorted(
        (event.request_id, event.status, str(event.deliveries)) for event in expected
    )
    assert {'badge badge-pending', 'badge badge-inquiring', 'badge badge-approved'} <= set(
        re.findall(r'class="(badge badge-[a-z]+)"', dom))
    assert '>1-3 of 3<' in dom
    # The backend named once, with where it is: "Reading from sql (sqlite:///...): reachable."
    assert re.search(r'Reading from sql \(sqlite:[^<]*\): reachable\.<', dom)
    assert 'Opened outside the Connect portal.' in dom
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
    # announces itself, gets $init, then reports its size.
    framed = f'{served.portal.url}installations/{VENDOR}/pages/0'
    dom = await chromium.dump_dom(framed)
    heard = re.search(r'<p id="bridge"[^>]*data-heard="([^"]*)"', dom)
    assert heard, dom
    assert {'$created', '$size'} <= set(heard.group(1).split())

    screenshot = tmp_path / 'events-page.png'
    await chromium.screenshot(f'{framed}#{VENDOR_REQUEST}', screenshot, size=(1280, 720))
    assert png_size(screenshot.read_bytes()) == (1280, 720)
    keep = os.environ.get(SCREENSHOT_VARIABLE)
    if keep:
        shutil.copyfile(screenshot, Path(keep))
