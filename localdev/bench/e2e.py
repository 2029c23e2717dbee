"""End to end: events through the Connect emulation and the real runner (`cextrun`).

Each event is one task over the runner's websocket: the runner fetches the request from the
emulated API, runs the handler in its worker process, and answers; the time is from sending
the task to receiving the result.
"""
import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Mapping

from localdev.bench.measure import Work
from localdev.bench.workloads import EventFactory
from localdev.connect_emulator import Event
from localdev.offline import offline_runner

READY_TIMEOUT = 120
#: Longest wait for one task's result: a runner that stops answering fails the run, with the
#: log to say why, instead of hanging it.
TASK_TIMEOUT = 60


@asynccontextmanager
async def runner_work(
    variables: Mapping[str, str], events: EventFactory, log_path: Path,
) -> AsyncIterator[Work]:
    """A started runner; yields the work that delivers event n and checks its result."""
    async with offline_runner(variables=variables, log_path=log_path,
                              ready_timeout=READY_TIMEOUT) as emulator:

        async def deliver(n: int) -> bool:
            event = Event(events.request(n), events.installation)
            try:
                delivery = await asyncio.wait_for(emulator.deliver(event), TASK_TIMEOUT)
            except asyncio.TimeoutError:
                raise RuntimeError(
                    f'the runner did not answer the task for {event.request_id} within '
                    f'{TASK_TIMEOUT}s; see {log_path}',
                ) from None
            return [result.result for result in delivery.results] == ['success']

        yield deliver
