"""Data API baselines: the local server in its own process, and bare httpx clients.

The first delivery of an event by the `dataapi` backend is four POSTs (see
`storage.mongo_store.MongoStore.save` and `storage.mongo_counts.count_creation`): updateOne
(the upsert, which sets the event's counting marker), findOne (the delivery count and the
marker, which updateOne does not return), updateOne on the counts collection (one more
event of its installation and status) and updateOne removing the marker. A redelivery is
the first two only. The raw baselines send the same bodies, so they do the same HTTP work
with nothing of the extension around it.
"""
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Dict, Optional

import httpx
from bson import ObjectId, json_util

from connect_mongodb_example.storage.dataapi_client import MAX_CONNECTIONS
from localdev.bench.workloads import EventFactory

API_KEY = 'bench-local-key'
DATA_SOURCE = 'mongodb-atlas'
DATABASE = 'connect_events'
START_TIMEOUT = 30

logger = logging.getLogger(__name__)


@asynccontextmanager
async def dataapi_server(mongodb_uri: Optional[str] = None) -> AsyncIterator[str]:
    """`python -m localdev.dataapi_server` on a free port (it prints the URL it got); yields
    its base URL. Its own process, so that server and client do not share one event loop.
    Its data is in memory (mongomock), or in the server at `mongodb_uri`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, '-m', 'localdev.dataapi_server', '--port', '0',
        '--api-key', API_KEY, *(['--mongodb-uri', mongodb_uri] if mongodb_uri else []),
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
    """The backend's POSTs through a bare httpx client: one pooled client with the
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

    def _bodies(self, n: int, marker: ObjectId) -> Dict[str, str]:
        key, request = self.events.key_fields(n)
        now = datetime.now(timezone.utc)
        owner = self.events.installation['owner']
        installation_id = self.events.installation['id']
        first_write = {
            'key': key, 'request_id': request['id'], 'status': request['status'],
            'updated': request['updated'], 'event_type': 'asset_purchase_request_processing',
            'asset_id': request['asset']['id'],
            'product_id': request['asset']['product']['id'],
            'installation_id': installation_id, 'account_id': owner['id'],
            'received_at': now, 'request': request, 'counting': marker,
        }
        events = {'dataSource': DATA_SOURCE, 'database': DATABASE,
                  'collection': self.collection}
        counts = {**events, 'collection': self.collection + '_counts'}
        update = {**events, 'filter': {'key': key}, 'upsert': True, 'update': {
            '$setOnInsert': first_write, '$inc': {'delivery_count': 1},
            '$max': {'last_received_at': now},
        }}
        find = {**events, 'filter': {'key': key},
                'projection': {'_id': 0, 'delivery_count': 1, 'counting': 1}}
        # One count per installation and status, its _id the pair as compact JSON.
        count_id = json.dumps([installation_id, request['status']], separators=(',', ':'))
        count = {**counts, 'filter': {'_id': count_id}, 'upsert': True, 'update': {
            '$inc': {'events': 1, 'version': 1},
            '$setOnInsert': {'installation_id': installation_id, 'status': request['status']},
        }}
        unmark = {**events, 'filter': {'key': key, 'counting': marker},
                  'update': {'$unset': {'counting': ''}}}
        options = json_util.RELAXED_JSON_OPTIONS
        return {name: json_util.dumps(body, json_options=options) for name, body in (
            ('updateOne', update), ('findOne', find), ('count', count), ('unmark', unmark))}

    async def __call__(self, n: int) -> bool:
        marker = ObjectId()
        bodies = self._bodies(n, marker)
        if self.client is not None:
            return await self._save(self.client, bodies, marker)
        async with self._client() as client:
            return await self._save(client, bodies, marker)

    async def _save(self, client: httpx.AsyncClient, bodies: Dict[str, str],
                    marker: ObjectId) -> bool:
        written = await client.post(f'{self.base_url}/action/updateOne',
                                    content=bodies['updateOne'])
        counted = await client.post(f'{self.base_url}/action/findOne', content=bodies['findOne'])
        document: Any = json_util.loads(counted.text).get('document') or {}
        replies = [written, counted]
        if document.get('counting') in (marker, str(marker)):
            # This delivery created the event: count it, then take its marker off.
            for body in (bodies['count'], bodies['unmark']):
                replies.append(await client.post(f'{self.base_url}/action/updateOne',
                                                 content=body))
        return (all(reply.status_code == 200 for reply in replies)
                and document.get('delivery_count', 0) >= 1)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
