"""Several runner instances at once: tasks spread across them, and redelivered when one
disconnects or keeps a task too long. Driven by hand-played workers."""
import asyncio
import time
from collections import Counter
from contextlib import AsyncExitStack
from typing import AsyncIterator, Callable, List

import aiohttp
import httpx
import pytest

from localdev import demo
from localdev.connect_emulator import ConnectEmulator, Event
from localdev.connect_emulator.dispatch import WorkerPool
from localdev.connect_emulator.server import RUNNER_API_KEY
from tests.localdev.test_websocket import FakeWorker


@pytest.fixture
async def workers() -> AsyncIterator[Callable]:
    """`await connect(emulator, 'instance-a')`: a set-up background worker of that instance."""
    async with AsyncExitStack() as stack:

        async def connect(emulator: ConnectEmulator, instance: str) -> FakeWorker:
            connector = aiohttp.TCPConnector(ssl=emulator.certificates.client_context())
            session = await stack.enter_async_context(aiohttp.ClientSession(
                connector=connector, headers={'Authorization': RUNNER_API_KEY}))
            ws = await stack.enter_async_context(session.ws_connect(
                f'wss://{emulator.address}/public/v1/devops/ws/{emulator.environment_id}/'
                f'{instance}?running_tasks=0&running_scheduled_tasks=0&runner_type=background'))
            worker = FakeWorker(ws)
            await worker.setup()
            return worker

        yield connect


def emulation(**options) -> ConnectEmulator:
    return ConnectEmulator(variables={'DATABASE_URL': 'sqlite:////tmp/unused.sqlite3'}, **options)


async def answer_all(worker: FakeWorker, count: int) -> List[str]:
    """Answer `count` tasks; the request ids they were about."""
    seen = []
    for _ in range(count):
        task = await worker.receive()
        seen.append(task.data.input.object_id)
        await worker.answer(task)
    return seen


async def test_tasks_spread_evenly_across_instances(workers, purchase_request):
    async with emulation() as emulator:
        connected = [await workers(emulator, f'instance-{name}') for name in 'abc']
        await emulator.wait_ready(instances=3)
        events = [Event(purchase_request(f'PR-{n}')) for n in range(9)]

        delivering = asyncio.create_task(emulator.deliver_all(events))
        handled = await asyncio.gather(*(answer_all(worker, 3) for worker in connected))
        deliveries = await delivering

    assert sorted(sum(handled, [])) == sorted(event.request_id for event in events)
    answered_by = Counter(d.results[0].instance_id for d in deliveries)
    assert answered_by == {'instance-a': 3, 'instance-b': 3, 'instance-c': 3}
    assert emulator.channel.workers.redeliveries == []


async def test_a_task_without_result_in_time_goes_to_another_instance(
    workers, purchase_request,
):
    async with emulation(task_timeout=0.3) as emulator:
        silent = await workers(emulator, 'instance-silent')
        delivering = asyncio.create_task(emulator.deliver(Event(purchase_request('PR-1'))))
        first = await silent.receive()
        answering = await workers(emulator, 'instance-answering')

        second = await answering.receive()  # after the timeout: the same task again
        await answering.answer(second)
        delivery = await delivering
        await silent.answer(first)  # too late: ignored

    assert second.data.options.task_id == first.data.options.task_id
    assert [(r.result, r.instance_id) for r in delivery.results] == [
        ('success', 'instance-answering')]
    [redelivery] = emulator.channel.workers.redeliveries
    assert (redelivery.instance_id, redelivery.reason) == (
        'instance-silent', 'instance instance-silent gave no result within 0.3s')


async def test_tasks_of_a_worker_that_disconnects_go_to_the_others(workers, purchase_request):
    async with emulation() as emulator:
        dying = await workers(emulator, 'instance-dying')
        surviving = await workers(emulator, 'instance-surviving')
        events = [Event(purchase_request(f'PR-{n}')) for n in range(4)]
        delivering = asyncio.create_task(emulator.deliver_all(events))
        held = [await dying.receive() for _ in range(2)]

        await dying.ws.close()
        handled = await answer_all(surviving, 4)
        deliveries = await delivering

    assert sorted(handled) == sorted(event.request_id for event in events)
    assert {d.results[0].instance_id for d in deliveries} == {'instance-surviving'}
    redelivered = emulator.channel.workers.redeliveries
    assert sorted(r.task_id for r in redelivered) == sorted(t.data.options.task_id for t in held)
    assert all('disconnected before answering' in r.reason for r in redelivered)


async def test_a_runner_that_comes_back_gets_the_task_its_predecessor_held(
    workers, purchase_request,
):
    async with emulation() as emulator:
        first = await workers(emulator, 'instance-1')
        delivering = asyncio.create_task(emulator.deliver(Event(purchase_request('PR-1'))))
        await first.receive()
        await first.ws.close()

        restarted = await workers(emulator, 'instance-1')
        await answer_all(restarted, 1)
        delivery = await delivering

    assert delivery.results[0].result == 'success'


async def test_a_full_worker_gets_no_more_tasks_until_it_answers(workers, purchase_request):
    async with emulation(max_in_flight=1) as emulator:
        worker = await workers(emulator, 'instance-a')
        events = [Event(purchase_request('PR-1')), Event(purchase_request('PR-2'))]
        delivering = asyncio.create_task(emulator.deliver_all(events))
        first = await worker.receive()

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(worker.ws.receive(), 0.3)
        await worker.answer(first)
        await answer_all(worker, 1)
        deliveries = await delivering

    assert [d.results[0].result for d in deliveries] == ['success', 'success']


async def test_every_api_call_is_delayed_by_the_latency_asked_for():
    async with emulation(api_latency=0.2) as slow, httpx.AsyncClient(
        verify=slow.certificates.client_context(), trust_env=False,
        headers={'Authorization': RUNNER_API_KEY},
    ) as client:
        started = time.monotonic()
        response = await client.get(f'https://{slow.address}/public/v1/requests/PR-404')
        elapsed = time.monotonic() - started

    assert response.status_code == 404
    assert elapsed >= 0.2


def test_bad_pool_settings_are_refused():
    with pytest.raises(ValueError, match='task_timeout must be positive'):
        WorkerPool(task_timeout=0)
    with pytest.raises(ValueError, match='max_in_flight at least 1'):
        WorkerPool(max_in_flight=0)
    with pytest.raises(ValueError, match='API latency must be 0 or more'):
        emulation(api_latency=-1)


@pytest.mark.parametrize(('arguments', 'problem'), [
    (['--instances', '0'], 'expected a whole number of 1 or more'),
    (['--api-latency-ms', '-5'], '--api-latency-ms must be 0 or more'),
])
def test_the_demo_refuses_bad_scale_out_options(arguments, problem, capsys):
    with pytest.raises(SystemExit):
        demo.parse_args(arguments)

    assert problem in capsys.readouterr().err


def test_the_demo_passes_instances_and_latency_on():
    options = demo.parse_args(['--instances', '3', '--api-latency-ms', '50'])

    assert (options.instances, options.api_latency_ms) == (3, 50.0)
