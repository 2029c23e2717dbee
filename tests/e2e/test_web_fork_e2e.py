"""The Events page follows the declarations: a fork that adds a field (with its column) and
an event type with statuses of its own, run by the real runner, shows both in a browser
with no change to `static/`.

The fork is a copy of the repository changed as README's "Fork it" recipes say (the field,
its column; the event type is a marketplace listing request, whose statuses the purchase
requests do not have); the runner imports it (PYTHONPATH) and stores the demo's events.
"""
import asyncio
import os
import re
from pathlib import Path
from typing import AsyncIterator, Tuple

import httpx
import pytest
import pytest_asyncio

from localdev.connect_emulator import ConnectEmulator, load_events
from localdev.connect_emulator.portal import LocalPortal
from localdev.offline import REPO_ROOT
from localdev.runner_fleet import RunnerFleet
from localdev.runner_process import log_tail
from tests.support.chromium import Chromium, find_chromium
from tests.support.events_page import status_options, table_headings, table_rows
from tests.support.fork import (
    insert_after,
    insert_before,
    last_migration,
    make_fork,
    recipe_blocks,
)

pytestmark = [
    pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.asyncio(loop_scope='module'),
]

PACKAGE = 'connect_mongodb_example'
TIMEOUT_SECONDS = 120
CUSTOMER_ID = 'TA-0-7251-3930-7482'  # the demo's customer
DEMO_EVENTS = load_events(REPO_ROOT / 'demo' / 'events')
VENDOR = 'EIN-2761-4185-5524'  # an installation of the demo
LISTING_STATUSES = ('reviewing', 'deploying', 'completed', 'canceled')
#: A fork's own event type, declared and handled as "Handle another event type" shows.
LISTING_DECLARATION = f"""
LISTING_REQUEST = EventType(
    'listing_new_request_processing',
    statuses={LISTING_STATUSES!r},
)

"""
LISTING_HANDLER = """
    @event(LISTING_REQUEST.name, statuses=list(LISTING_REQUEST.statuses))
    async def handle_listing_new_request_processing(
        self, request: Dict[str, Any],
    ) -> BackgroundResponse:
        return await self.store_event(LISTING_REQUEST, request)
"""


def forked(destination: Path) -> Path:
    fork = make_fork(destination)
    field, migration = recipe_blocks('Add a field to the record')
    [column] = recipe_blocks('Add a column to the page')
    insert_after(fork / PACKAGE / 'event_record.py', '    account_id: ', field)
    insert_after(fork / PACKAGE / 'storage' / 'sql_schema.py', last_migration(fork), migration)
    insert_after(fork / PACKAGE / 'event_views.py', "    'account_id',", column)
    extension = fork / PACKAGE / 'extension.py'
    insert_before(extension, '@variables(', LISTING_DECLARATION)
    insert_after(extension, '        return await self.store_event(PURCHASE_REQUEST, request)',
                 LISTING_HANDLER)
    return fork


@pytest_asyncio.fixture(scope='module', loop_scope='module')
async def served(tmp_path_factory) -> AsyncIterator[Tuple[ConnectEmulator, LocalPortal]]:
    directory = tmp_path_factory.mktemp('web-fork-e2e')
    fork = forked(directory / 'fork')
    log = directory / 'runner.log'
    variables = {'DATABASE_URL': f'sqlite:///{directory}/events.sqlite3',
                 'ON_UNINSTALL': 'purge', 'PURGE_GRACE_DAYS': '10',
                 'EVENTS_RETENTION_DAYS': '90'}
    # The fork's package comes first: the runner loads the extension from it.
    path = os.pathsep.join(filter(None, [str(fork), os.environ.get('PYTHONPATH')]))
    try:
        async with ConnectEmulator(variables=variables) as emulator, \
                RunnerFleet(emulator, log_path=log, cwd=fork, env={'PYTHONPATH': path}) as fleet, \
                LocalPortal(emulator) as portal:
            await fleet.start_all(1, TIMEOUT_SECONDS)
            deliveries = await asyncio.wait_for(
                emulator.deliver_all(DEMO_EVENTS),
                TIMEOUT_SECONDS)
            assert {result.result for delivery in deliveries for result in delivery.results} \
                == {'success'}
            await asyncio.wait_for(emulator.web.wait_ready(), TIMEOUT_SECONDS)
            yield emulator, portal
    finally:
        print(log_tail(log, 80))  # shown when a test fails


@pytest.fixture(scope='module')
def chromium() -> Chromium:
    executable = find_chromium()
    if executable is None:
        pytest.skip('Chromium is not installed (Debian: apt-get install chromium): the forked '
                    'Events page was not opened in a browser')
    return Chromium(executable)


async def test_a_forks_field_and_statuses_appear_on_the_page(served, chromium):
    emulator, portal = served
    origin = await portal.installation_origin(VENDOR)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        schema = (await client.get(f'{origin}/api/schema')).json()
    assert schema['columns'][6] == 'customer_id'
    assert schema['statuses'][-len(LISTING_STATUSES):] == list(LISTING_STATUSES)

    dom = await chromium.dump_dom(await portal.page_url(VENDOR))

    headings = table_headings(dom)
    assert headings[5:8] == ['Account', 'Customer', 'Deliveries']
    rows = table_rows(dom)
    assert len(rows) == len([event for event in DEMO_EVENTS if event.installation_id == VENDOR])
    assert {cells[6] for cells in rows.values()} == {CUSTOMER_ID}
    options = status_options(dom)
    assert options[-len(LISTING_STATUSES):] == list(LISTING_STATUSES)
    assert 'pending' in options
    # The data policy the variables set, on the page.
    assert re.search(r'>Data policy: events are deleted 90 days after they are first received; '
                     r'if the extension is uninstalled, they are purged 10 days later '
                     r'\(a reinstall before then keeps them\)\.<', dom)
