"""The websocket endpoint, driven by a hand-played runner worker."""
import asyncio
import json
from typing import AsyncIterator

import aiohttp
import pytest
from connect.eaas.core.proto import Message, MessageType

from localdev.connect_emulator import ConnectEmulator, Event, dispatch
from localdev.connect_emulator.server import RUNNER_API_KEY
from localdev.connect_emulator.websocket import RunnerDisconnected
from tests.localdev.test_protocol import extension_setup_request


class FakeWorker:
    """Speaks the protocol like the runner's events worker, one message at a time."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws

    async def setup(self) -> Message:
        await self.send(Message(
            version=2, message_type=MessageType.SETUP_REQUEST, data=extension_setup_request(),
        ))
        return await self.receive()

    async def send(self, message: Message) -> None:
        await self.ws.send_str(json.dumps(message.dict()))

    async def receive(self) -> Message:
        return Message.deserialize(json.loads(await self.ws.receive_str(timeout=10)))

    async def answer(self, task_message: Message, result: str = 'success') -> None:
        task = task_message.data.copy(deep=True)
        task.output = {'result': result, 'runtime': 0.01}
        await self.send(Message(version=2, message_type=MessageType.TASK, data=task))


def ws_url(emulator: ConnectEmulator, environment_id: str = '', runner_type='background') -> str:
    environment_id = environment_id or emulator.environment_id
    return (f'wss://{emulator.address}/public/v1/devops/ws/{environment_id}/test-instance'
            f'?running_tasks=0&running_scheduled_tasks=0&runner_type={runner_type}')


@pytest.fixture
async def session(emulator) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=emulator.certificates.client_context())
    async with aiohttp.ClientSession(
        connector=connector, headers={'Authorization': RUNNER_API_KEY},
    ) as client:
        yield client


@pytest.fixture
async def worker(emulator, session) -> AsyncIterator[FakeWorker]:
    async with session.ws_connect(ws_url(emulator)) as ws:
        yield FakeWorker(ws)


async def test_setup_then_tasks_then_results(emulator, worker, purchase_request, installation):
    assert not emulator.channel.is_ready()
    response = await worker.setup()
    assert response.message_type == MessageType.SETUP_RESPONSE
    assert emulator.channel.is_ready()

    event = Event(purchase_request('PR-1', 'approved'), installation, deliveries=2)
    delivering = asyncio.create_task(emulator.deliver(event))
    first = await worker.receive()
    # While the task is out, the API shows the request as the event describes it.
    assert emulator.objects.request('PR-1')['status'] == 'approved'
    assert emulator.objects.installation(installation['id']) == installation
    await worker.answer(first)
    second = await worker.receive()
    await worker.answer(second, 'retry')
    delivery = await delivering

    assert [result.result for result in delivery.results] == ['success', 'retry']
    assert first.data.options.task_id != second.data.options.task_id
    assert {message.data.input.object_id for message in (first, second)} == {'PR-1'}
    assert first.data.options.installation_id == installation['id']
    assert first.data.options.api_key.startswith('ApiKey ')
    assert emulator.channel.setup_requests[0].event_subscriptions == (
        extension_setup_request().event_subscriptions
    )
    assert emulator.deliveries == [delivery]


async def test_events_of_one_request_wait_for_each_other_others_do_not(
    emulator, worker, purchase_request,
):
    await worker.setup()
    events = [
        Event(purchase_request('PR-A', 'pending', updated='2026-01-01T00:00:00+00:00')),
        Event(purchase_request('PR-A', 'approved', updated='2026-01-02T00:00:00+00:00')),
        Event(purchase_request('PR-B', 'pending')),
    ]
    delivering = asyncio.create_task(emulator.deliver_all(events))

    first, second = await worker.receive(), await worker.receive()
    assert {first.data.input.object_id, second.data.input.object_id} == {'PR-A', 'PR-B'}
    assert emulator.objects.request('PR-A')['status'] == 'pending'
    await worker.answer(first)
    await worker.answer(second)
    third = await worker.receive()
    assert third.data.input.object_id == 'PR-A'
    assert emulator.objects.request('PR-A')['status'] == 'approved'
    await worker.answer(third)

    deliveries = await delivering
    assert [delivery.event for delivery in deliveries] == events


async def shut_down(emulator, worker) -> None:
    """The worker says it shuts down; return once the emulation has taken note (1 s at most)."""
    await worker.send(Message(version=2, message_type=MessageType.SHUTDOWN))
    for _ in range(100):
        if emulator.channel.shutdowns:
            return
        await asyncio.sleep(0.01)


async def test_a_worker_that_shuts_down_gets_no_new_task(emulator, worker):
    await worker.setup()

    await shut_down(emulator, worker)

    assert emulator.channel.shutdowns == ['background']
    assert not emulator.channel.is_ready()


async def test_a_delivery_with_no_worker_to_take_it_fails_instead_of_hanging(
    emulator, worker, purchase_request, monkeypatch,
):
    monkeypatch.setattr(dispatch, 'WORKER_WAIT_SECONDS', 0.2)
    await worker.setup()
    await shut_down(emulator, worker)

    with pytest.raises(RunnerDisconnected, match='no runner background worker .* within 0.2s'):
        await emulator.deliver(Event(purchase_request('PR-1')))

    assert emulator.deliveries == []
    assert emulator.channel.results == []


async def test_a_disconnect_with_no_other_worker_fails_the_tasks_still_out(
    emulator, worker, purchase_request, monkeypatch,
):
    monkeypatch.setattr(dispatch, 'WORKER_WAIT_SECONDS', 0.2)
    await worker.setup()
    delivering = asyncio.create_task(emulator.deliver(Event(purchase_request('PR-1'))))
    await worker.receive()

    await worker.ws.close()

    with pytest.raises(RunnerDisconnected, match='no runner background worker .* within 0.2s'):
        await delivering
    assert 'disconnected before answering task' in emulator.channel.workers.redeliveries[0].reason


async def test_an_interactive_worker_is_set_up_but_gets_no_background_task(
    emulator, session,
):
    async with session.ws_connect(ws_url(emulator, runner_type='interactive')) as ws:
        response = await FakeWorker(ws).setup()

        assert response.message_type == MessageType.SETUP_RESPONSE
        assert emulator.channel.is_ready('interactive')
        assert not emulator.channel.is_ready('background')


async def test_another_environment_is_refused(emulator, session):
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await session.ws_connect(ws_url(emulator, environment_id='ENV-9999-9999-01'))

    assert caught.value.status == 404


async def test_a_connection_without_api_key_is_refused(emulator):
    connector = aiohttp.TCPConnector(ssl=emulator.certificates.client_context())
    async with aiohttp.ClientSession(connector=connector) as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await client.ws_connect(ws_url(emulator))

    assert caught.value.status == 401
