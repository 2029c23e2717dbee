"""Browser calls through the local portal, as web tasks to a hand-played runner web worker."""
import asyncio
import base64
import json
from typing import AsyncIterator

import aiohttp
import httpx
import pytest
from connect.eaas.core.proto import (
    HttpResponse,
    Message,
    MessageType,
    SetupRequest,
    WebTask,
)

from localdev.connect_emulator import webtasks
from localdev.connect_emulator.portal import LocalPortal
from localdev.connect_emulator.server import RUNNER_API_KEY

UI_MODULES = {'modules': {'label': 'Events', 'url': '/static/index.html'}}
VENDOR = {'id': 'EIN-1111-2222-3333', 'owner': {'id': 'VA-111-111', 'name': 'Vendor One'}}
DISTRIBUTOR = {'id': 'EIN-4444-5555-6666', 'owner': {'id': 'PA-222-222', 'name': 'Distrib'}}


class FakeWebWorker:
    """Speaks the protocol like the runner's web worker (workers/web.py)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws

    async def setup(self) -> Message:
        await self.send(Message(
            version=2, message_type=MessageType.SETUP_REQUEST,
            data=SetupRequest(ui_modules=UI_MODULES, variables=[], runner_version='43.1'),
        ))
        return await self.receive()

    async def send(self, message: Message) -> None:
        await self.ws.send_str(json.dumps(message.dict()))

    async def receive(self) -> Message:
        return Message.deserialize(json.loads(await self.ws.receive_str(timeout=10)))

    async def answer(self, task: Message, status: int, headers: dict, body: bytes) -> None:
        await self.send(Message(version=2, message_type=MessageType.WEB_TASK, data=WebTask(
            options=task.data.options, request=task.data.request,
            response=HttpResponse(
                status=status, headers=headers, content=base64.encodebytes(body).decode(),
            ),
        )))


def webapp_ws_url(emulator) -> str:
    return (f'wss://{emulator.address}/public/v1/devops/ws/{emulator.environment_id}'
            f'/test-instance/webapp')


@pytest.fixture
async def web_worker(emulator) -> AsyncIterator[FakeWebWorker]:
    connector = aiohttp.TCPConnector(ssl=emulator.certificates.client_context())
    async with aiohttp.ClientSession(
        connector=connector, headers={'Authorization': RUNNER_API_KEY},
    ) as session, session.ws_connect(webapp_ws_url(emulator)) as ws:
        yield FakeWebWorker(ws)


@pytest.fixture
async def portal(emulator) -> AsyncIterator[LocalPortal]:
    emulator.objects.put_installation(VENDOR)
    emulator.objects.put_installation(DISTRIBUTOR)
    async with LocalPortal(emulator) as portal:
        yield portal


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        yield client


async def test_the_web_worker_is_set_up_with_the_extension_variables(emulator, web_worker):
    assert not emulator.web.is_ready()

    response = await web_worker.setup()

    assert response.message_type == MessageType.SETUP_RESPONSE
    assert {item['name']: item['value'] for item in response.data.variables}[
        'DATABASE_URL'] == 'sqlite:////tmp/unused.sqlite3'
    assert emulator.web.is_ready()
    assert emulator.web.ui_modules == UI_MODULES


async def test_a_browser_call_reaches_the_worker_with_the_installation_context_only(
    portal, web_worker, browser,
):
    await web_worker.setup()
    origin = await portal.installation_origin(VENDOR['id'])
    calling = asyncio.create_task(browser.post(
        f'{origin}/api/events?status=approved&limit=2',
        content=b'{"a": 1}',
        headers={
            # Forged context and the caller's own credentials: never passed on.
            'X-Connect-Installation-Id': DISTRIBUTOR['id'],
            'x-connect-account-id': DISTRIBUTOR['owner']['id'],
            'Cookie': 'session=secret', 'Authorization': 'Bearer secret',
            'Accept': 'application/json', 'Content-Type': 'application/json',
        },
    ))

    task = await web_worker.receive()
    await web_worker.answer(task, 201, {
        'content-type': 'application/json', 'content-range': 'items 0-1/7',
        'content-length': '999', 'connection': 'close',
    }, b'[1, 2]')
    response = await calling

    assert task.message_type == MessageType.WEB_TASK
    options, request = task.data.options, task.data.request
    assert (options.installation_id, options.account_id, options.account_role) == (
        VENDOR['id'], 'VA-111-111', 'vendor',
    )
    assert options.api_key == webtasks.installation_api_key(VENDOR['id'])
    assert (options.call_source, options.call_type, options.user_id) == (
        'ui', 'user', webtasks.PORTAL_USER_ID,
    )
    assert (request.method, request.url) == ('POST', '/api/events?status=approved&limit=2')
    assert base64.b64decode(request.content) == b'{"a": 1}'
    assert request.headers['accept'] == 'application/json'
    assert not [name for name in request.headers
                if name.startswith('x-connect-') or name in ('cookie', 'authorization', 'host')]

    assert response.status_code == 201
    assert response.json() == [1, 2]
    assert response.headers['content-range'] == 'items 0-1/7'
    assert response.headers['content-length'] == '6'


async def test_each_installation_has_its_own_origin_and_context(portal, web_worker, browser):
    await web_worker.setup()
    vendor = await portal.installation_origin(VENDOR['id'])
    distributor = await portal.installation_origin(DISTRIBUTOR['id'])
    assert vendor != distributor
    assert await portal.installation_origin(VENDOR['id']) == vendor
    # Asked for at once, an installation still gets one origin.
    emulator = portal.emulator
    emulator.objects.put_installation(dict(VENDOR, id='EIN-7777-7777-7777'))
    twice = await asyncio.gather(*(portal.installation_origin('EIN-7777-7777-7777')
                                   for _ in range(2)))
    assert twice[0] == twice[1]

    calling = asyncio.create_task(browser.get(f'{distributor}/static/index.html'))
    task = await web_worker.receive()
    await web_worker.answer(task, 200, {'content-type': 'text/html'}, b'<p>page</p>')

    assert (await calling).text == '<p>page</p>'
    assert task.data.options.installation_id == DISTRIBUTOR['id']
    assert task.data.options.account_role == 'distributor'


async def test_the_portal_lists_installations_with_the_declared_pages(
    portal, web_worker, browser,
):
    await web_worker.setup()

    page = (await browser.get(portal.url)).text

    for installation in (VENDOR, DISTRIBUTOR):
        framed = f'/installations/{installation["id"]}/pages/0'
        standalone = await portal.page_url(installation['id'])
        assert f'<a href="{framed}">Events</a> <a href="{standalone}">standalone</a>' in page
        assert installation['owner']['name'] in page
        frame = await browser.get(portal.url.rstrip('/') + framed)
        assert f'<iframe id="slot" name="extension-slot" src="{standalone}">' in frame.text
        assert f'{installation["owner"]["name"]} ({installation["id"]}) &rsaquo; Events' in (
            frame.text)
    assert 'web worker is connected; pages declared: Events' in page
    for missing in ('EIN-0000/pages/0', f'{VENDOR["id"]}/pages/1'):
        response = await browser.get(f'{portal.url}installations/{missing}')
        assert response.status_code == 404
    root = await browser.get(await portal.installation_origin(VENDOR['id']) + '/')
    assert (root.status_code, root.headers['location']) == (302, '/static/index.html')


async def test_without_a_web_worker_the_browser_gets_503_not_a_hang(
    portal, browser, monkeypatch,
):
    monkeypatch.setattr(webtasks, 'WORKER_WAIT_SECONDS', 0.1)

    response = await browser.get(await portal.page_url(VENDOR['id']))

    assert response.status_code == 503
    assert 'no runner web worker' in response.json()['errors'][0]
    assert 'No runner web worker is connected' in (await browser.get(portal.url)).text


async def test_a_worker_that_disconnects_mid_call_gives_502(portal, web_worker, browser):
    await web_worker.setup()
    calling = asyncio.create_task(browser.get(await portal.page_url(VENDOR['id'])))
    await web_worker.receive()

    await web_worker.ws.close()

    response = await calling
    assert response.status_code == 502
    assert 'disconnected before answering' in response.json()['errors'][0]
    assert not portal.emulator.web.is_ready()


async def test_an_unknown_installation_has_no_origin(portal):
    with pytest.raises(KeyError, match='EIN-0000'):
        await portal.installation_origin('EIN-0000')


async def test_a_worker_that_shuts_down_gets_no_new_call(portal, web_worker, browser, monkeypatch):
    monkeypatch.setattr(webtasks, 'WORKER_WAIT_SECONDS', 0.1)
    await web_worker.setup()

    await web_worker.send(Message(version=2, message_type=MessageType.SHUTDOWN))
    for _ in range(100):
        if not portal.emulator.web.is_ready():
            break
        await asyncio.sleep(0.01)

    response = await browser.get(await portal.page_url(VENDOR['id']))
    assert response.status_code == 503


async def test_several_runners_web_workers_share_the_calls(emulator, portal, browser):
    """With several runners connected (--instances), each call goes to one web worker; when
    one of them leaves, the others answer every call."""
    connector = aiohttp.TCPConnector(ssl=emulator.certificates.client_context())
    async with aiohttp.ClientSession(
        connector=connector, headers={'Authorization': RUNNER_API_KEY},
    ) as session:
        workers = []
        for number in (1, 2):
            ws = await session.ws_connect(webapp_ws_url(emulator).replace(
                'test-instance', f'instance-{number}'))
            workers.append(FakeWebWorker(ws))
            await workers[-1].setup()

        async def serve(worker: FakeWebWorker, name: str) -> None:
            while True:
                task = await worker.receive()
                await worker.answer(task, 200, {'content-type': 'text/plain'}, name.encode())

        serving = [asyncio.create_task(serve(worker, f'worker-{number}'))
                   for number, worker in enumerate(workers, 1)]
        url = await portal.page_url(VENDOR['id'])
        try:
            shared = {(await browser.get(url)).text for _ in range(4)}
            serving[0].cancel()
            await workers[0].ws.close()
            for _ in range(100):
                if len(portal.emulator.web._links) == 1:
                    break
                await asyncio.sleep(0.01)
            left = [await browser.get(url) for _ in range(3)]
        finally:
            for task in serving:
                task.cancel()
            for worker in workers:
                await worker.ws.close()

    assert shared == {'worker-1', 'worker-2'}
    assert [(response.status_code, response.text) for response in left] == [
        (200, 'worker-2')] * 3
