"""The local portal's lifecycle buttons: what they deliver, and who may press them. (Through
the real runner, with the demo's actions: tests/e2e/test_demo_keep_running.py.)"""
import re
from typing import AsyncIterator, List

import httpx
import pytest
from connect.eaas.core.proto import Schedulable, SetupRequest

from localdev.connect_emulator import InstallationChange, Item, ScheduleRun
from localdev.connect_emulator.portal import LocalPortal
from localdev.connect_emulator.portal_controls import run_label

VENDOR = {'id': 'EIN-1111-2222-3333', 'owner': {'id': 'VA-111-111', 'name': 'Vendor One'},
          'status': 'installed'}


class Recorded:
    """Actions that keep what the buttons asked for."""

    def __init__(self) -> None:
        self.items: List[Item] = []

    async def deliver(self, item: Item) -> str:
        self.items.append(item)
        return f'{item.subject}: delivered <ok>'


@pytest.fixture
def actions() -> Recorded:
    return Recorded()


@pytest.fixture
async def portal(emulator, actions) -> AsyncIterator[LocalPortal]:
    emulator.objects.put_installation(VENDOR)
    emulator.channel.setup_requests.append(SetupRequest(schedulables=[Schedulable(
        method='run_data_lifecycle', name='Data lifecycle', description='Purges.')]))
    async with LocalPortal(emulator, actions=actions) as portal:
        yield portal


@pytest.fixture
async def browser(portal) -> AsyncIterator[httpx.AsyncClient]:
    """As the portal's own page posts its forms."""
    async with httpx.AsyncClient(base_url=portal.url, trust_env=False, timeout=10,
                                 headers={'Origin': portal.url.rstrip('/')}) as client:
        yield client


async def test_the_page_offers_the_jobs_and_each_installation_its_status_change(browser):
    page = (await browser.get('/')).text

    assert '>Run the data lifecycle job now</button>' in page
    assert f'>Run the data lifecycle job for {VENDOR["id"]} now</button>' in page
    assert f'action="/installations/{VENDOR["id"]}/status"' in page
    assert '<input type="hidden" name="status" value="uninstalled"><button type="submit">' \
           'Uninstall</button>' in page


async def test_the_buttons_deliver_a_status_change_and_a_job_run_then_list_what_they_did(
    browser, actions,
):
    uninstall = await browser.post(f'/installations/{VENDOR["id"]}/status',
                                   data={'status': 'uninstalled'})
    job = await browser.post('/schedules/run', data={
        'method': 'run_data_lifecycle', 'installation_id': VENDOR['id']})

    assert (uninstall.status_code, uninstall.headers['Location']) == (303, '/')
    assert job.status_code == 303
    change, run = actions.items
    assert isinstance(change, InstallationChange)
    assert (change.installation, change.status) == (dict(VENDOR), 'uninstalled')
    assert isinstance(run, ScheduleRun)
    assert (run.method, run.parameter) == ('run_data_lifecycle', {'installation_id': VENDOR['id']})
    page = (await browser.get('/')).text
    listed = re.findall(r'<li>\d\d:\d\d:\d\d: ([^<]*)</li>', page)
    assert listed == ['run_data_lifecycle: delivered &lt;ok&gt;',
                      f'{VENDOR["id"]}: delivered &lt;ok&gt;']  # newest first, escaped


@pytest.mark.parametrize(('path', 'data'), [
    (f'/installations/{VENDOR["id"]}/status', {'status': 'suspended'}),
    ('/installations/EIN-404/status', {'status': 'uninstalled'}),
    ('/schedules/run', {'method': 'run_other'}),
    ('/schedules/run', {'method': 'run_data_lifecycle', 'installation_id': 'EIN-404'}),
])
async def test_what_the_extension_or_the_emulation_does_not_know_is_refused(
    browser, actions, path, data,
):
    response = await browser.post(path, data=data)

    assert response.status_code == 400
    assert actions.items == []


async def test_only_the_portal_page_may_press_the_buttons(portal, actions):
    async with httpx.AsyncClient(base_url=portal.url, trust_env=False) as client:
        response = await client.post('/schedules/run', data={'method': 'run_data_lifecycle'},
                                     headers={'Origin': 'http://evil.example'})

    assert response.status_code == 403
    assert actions.items == []


def test_a_job_is_called_by_its_name():
    job = Schedulable(method='run_it', name='Nightly export job', description='')

    assert run_label(job) == 'Run the nightly export job now'
    assert run_label(job, 'EIN-1') == 'Run the nightly export job for EIN-1 now'
