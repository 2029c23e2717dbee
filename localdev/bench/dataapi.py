"""Data API baselines: the local server in its own process, and bare httpx clients.

A save by the `dataapi` backend is two POSTs: updateOne (the upsert) then findOne (the
delivery count, which updateOne does not return). The raw baselines send the same two
bodies, so they do the same HTTP work with nothing of the extension around it.
"""
import asyncio
import contextlib
import logging
import os
import signal
import sys
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Dict, Optional

import httpx
from bson import json_util

from connect_mongodb_example.storage.dataapi_client import MAX_CONNECTIONS
from localdev.bench.workloads import EventFactory

API_KEY = 'bench-local-key'
DATA_SOURCE = 'mongodb-atlas'
DATABASE = 'connect_events'
START_TIMEOUT = 30

logger = logging.getLogger(__name__)


@asynccontextmanager
async def dataapi_server() -> AsyncIterator[str]:
    """`python -m localdev.dataapi_server` on a free port (it prints the URL it got); yields
    its base URL. Its own process, so that server and client do not share one event loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, '-m', 'localdev.dataapi_server', '--port', '0',
        '--api-key', API_KEY,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, 'PYTHONUNBUFFERED': '1'},
    )
    draining: Optional[asyncio.Future] = None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        text = line.decode(errors='replace')
        if 'Local Data API on ' not in text:
            raise RuntimeError(f'the local Data API server did not start: {text.strip()}')
        # Read on: a full pipe would block the server the next time it writes.
        draining = asyncio.ensure_future(drain(process.stdout))
        yield text.split('Local Data API on ', 1)[1].split(';', 1)[0].strip()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        if draining is not None:
            draining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await draining


async def drain(stream: asyncio.StreamReader) -> None:
    """Read `stream` until EOF, logging each line (the server's warnings and errors)."""
    while True:
        line = await stream.readline()
        if not line:
            return
        logger.debug('Data API server: %s', line.decode(errors='replace').rstrip())


def handler_config(base_url: str, collection: str) -> Dict[str, str]:
    return {'STORAGE_BACKENDS': 'dataapi', 'DATA_API_URL': base_url, 'DATA_API_KEY': API_KEY,
            'DATA_API_DATABASE': DATABASE, 'DATA_API_COLLECTION': collection}


class RawDataApiWork:
    """The backend's two POSTs through a bare httpx client: one pooled client with the
    backend's limits, or (`per_event`) a new client per event, as the tutorial did."""

    def __init__(self, base_url: str, collection: str, events: EventFactory,
                 per_event: bool = False):
        self.base_url = base_url.rstrip('/')
        self.collection = collection
        self.events = events
        self.per_event = per_event
        self.client: Optional[httpx.AsyncClient] = None if per_event else self._client()

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            headers={'apiKey': API_KEY, 'Content-Type': 'application/json',
                     'Accept': 'application/ejson, application/json;q=0.9'},
            timeout=10,
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS,
                                max_keepalive_connections=MAX_CONNECTIONS),
        )

    def _bodies(self, n: int) -> Dict[str, str]:
        key, request = self.events.key_fields(n)
        now = datetime.now(timezone.utc)
        owner = self.events.installation['owner']
        first_write = {
            'key': key, 'request_id': request['id'], 'status': request['status'],
            'updated': request['updated'], 'event_type': 'asset_purchase_request_processing',
            'asset_id': request['asset']['id'],
            'product_id': request['asset']['product']['id'],
            'installation_id': self.events.installation['id'], 'account_id': owner['id'],
            'received_at': now, 'request': request,
        }
        common = {'dataSource': DATA_SOURCE, 'database': DATABASE,
                  'collection': self.collection}
        update = {**common, 'filter': {'key': key}, 'upsert': True, 'update': {
            '$setOnInsert': first_write, '$inc': {'delivery_count': 1},
            '$set': {'last_received_at': now},
        }}
        find = {**common, 'filter': {'key': key},
                'projection': {'_id': 0, 'delivery_count': 1}}
        options = json_util.RELAXED_JSON_OPTIONS
        return {'updateOne': json_util.dumps(update, json_options=options),
                'findOne': json_util.dumps(find, json_options=options)}

    async def __call__(self, n: int) -> bool:
        bodies = self._bodies(n)
        if self.client is not None:
            return await self._save(self.client, bodies)
        async with self._client() as client:
            return await self._save(client, bodies)

    async def _save(self, client: httpx.AsyncClient, bodies: Dict[str, str]) -> bool:
        written = await client.post(f'{self.base_url}/action/updateOne',
                                    content=bodies['updateOne'])
        counted = await client.post(f'{self.base_url}/action/findOne', content=bodies['findOne'])
        document: Any = json_util.loads(counted.text).get('document') or {}
        return written.status_code == 200 and document.get('delivery_count', 0) >= 1

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
