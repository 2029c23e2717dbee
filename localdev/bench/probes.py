"""What the rest of the extension sees while a purge runs: a page read and an event write,
each repeated one at a time until told to stop, every latency kept.

- page: `GET /api/events` (page 1 and its total) of an installation the purge leaves alone,
  through the web application in process, as the runner's web worker calls it;
- write: a new event of one of those installations through the store's `save`, the call
  the events handler makes for every delivery.
"""
import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Sequence

import httpx

from connect_mongodb_example.event_record import build_record
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.storage.base import EventStore
from localdev.bench.measure import percentile
from localdev.bench.workloads import TEMPLATE_FILE


@dataclass
class Latencies:
    name: str
    seconds: List[float] = field(default_factory=list)

    @property
    def p50_ms(self) -> float:
        return percentile(self.seconds, 0.5) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.seconds, 0.99) * 1000


async def repeat(name: str, call: Callable[[], Awaitable[None]], stop: asyncio.Event,
                 pause: float = 0.0) -> Latencies:
    """Call `call` again and again until `stop`; `pause` between calls leaves the loop to
    the work being observed, as a caller that is not flat out would."""
    latencies = Latencies(name)
    while not stop.is_set():
        started = time.perf_counter()
        await call()
        latencies.seconds.append(time.perf_counter() - started)
        if pause:
            await asyncio.sleep(pause)
    return latencies


def page_reader(client: httpx.AsyncClient, installation_id: str) -> Callable[[], Awaitable[None]]:
    headers = {'X-Connect-Installation-Id': installation_id}

    async def read() -> None:
        response = await client.get('/api/events?limit=50', headers=headers)
        if response.status_code != 200 or not response.json():
            raise RuntimeError(f'page of {installation_id}: HTTP {response.status_code} '
                               f'{response.text[:200]}')
    return read


class EventWriter:
    """New purchase requests of `installations` in turn, saved by `store`; counts what each
    installation got, for the check that a purge left them all."""

    def __init__(self, store: EventStore, installations: Sequence[str], tag: str):
        document = json.loads(TEMPLATE_FILE.read_text(encoding='utf-8'))
        self._template = json.dumps(document['request'])
        self._store = store
        self._installations = itertools.cycle(installations)
        self._numbers = itertools.count()
        self._tag = tag
        self.written: Dict[str, int] = {}

    async def __call__(self) -> None:
        n = next(self._numbers)
        installation_id = next(self._installations)
        request: Dict[str, Any] = json.loads(self._template)
        request['id'] = f'PR-{self._tag}-{n // 10000:04d}-{n % 10000:04d}-001'
        record = build_record(request, PURCHASE_REQUEST, installation={
            'id': installation_id, 'owner': {'id': 'VA-000-000'}})
        if await self._store.save(record) != 1:
            raise RuntimeError(f'{record.key} was not a new event')
        self.written[installation_id] = self.written.get(installation_id, 0) + 1
