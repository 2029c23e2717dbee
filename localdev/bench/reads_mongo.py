"""The read benchmark's MongoDB: a throwaway SecantusDB, the events bulk-loaded in the
storage's own document shape, then migrated by the extension as an existing collection.

Loading through the handler would be 4 round trips an event; `insert_many` in batches
writes the documents the handler's upsert would have created (built by the storage's own
`upsert_update`, the delivery count and the times of the row), without the counting marker
a save removes once counted. The extension's first use then does what it does to a
collection of the previous version: creates the indexes and counts the events per
installation and status (`mongo_schema`, `mongo_counts.recount_all`), so the counts are
the extension's own. The driver and Data API backends then read the same collection.
"""
import json
import time
from contextlib import closing, contextmanager
from typing import Any, Awaitable, Callable, Dict, Iterator, Optional, Tuple

from pymongo import MongoClient

from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.storage import BACKENDS
from connect_mongodb_example.storage import mongo_documents as documents
from connect_mongodb_example.storage.base import EventFilter
from connect_mongodb_example.variables import ConfigReader
from localdev.bench.reads_data import (
    OTHERS,
    PRODUCT_ID,
    TARGET,
    installation_of,
    key_of,
    received_of,
    request_id_of,
    status_of,
    template_json,
    total_rows,
    updated_of,
)
from localdev.mongodb_server import APP_DATABASE, ThrowawayMongo

COLLECTION = 'bench_reads'
BATCH = 1000


@contextmanager
def secantus() -> Iterator[ThrowawayMongo]:
    """A SecantusDB server with authentication on, its data in a temporary directory."""
    server = ThrowawayMongo(databases=[APP_DATABASE])
    server.start()
    try:
        yield server
    finally:
        server.destroy()


def driver_config(uri: str, collection: str = COLLECTION) -> Dict[str, str]:
    return {'STORAGE_BACKENDS': 'mongodb', 'MONGODB_URI': uri,
            'MONGODB_DATABASE': APP_DATABASE, 'MONGODB_COLLECTION': collection}


def event_document(i: int, template: Dict[str, Any]) -> Dict[str, Any]:
    """Row i as the handler's first delivery would have stored it (then redelivered when
    its delivery count is 2)."""
    request_id = request_id_of(i)
    record = EventRecord(
        key=key_of(i), request_id=request_id, status=status_of(i), updated=updated_of(i),
        event_type=PURCHASE_REQUEST.name, asset_id=f'AS-{i}', product_id=PRODUCT_ID,
        installation_id=installation_of(i), account_id=f'VA-000-{i % OTHERS}',
        received_at=received_of(i), delivery_count=1 + i % 2,
        request={**template, 'id': request_id},
    )
    update = documents.upsert_update(record)
    return {**update['$setOnInsert'], **update['$max'], 'delivery_count': record.delivery_count}


def load(uri: str, target_events: int, collection: str = COLLECTION) -> float:
    """Insert every row in batches; the seconds it took."""
    template = json.loads(template_json())
    rows = total_rows(target_events)
    started = time.monotonic()
    with closing(MongoClient(uri)) as client:
        events = client[APP_DATABASE][collection]
        for first in range(1, rows + 1, BATCH):
            events.insert_many([event_document(i, template)
                                for i in range(first, min(first + BATCH, rows + 1))])
    return time.monotonic() - started


async def migrate(uri: str, collection: str = COLLECTION) -> None:
    """The extension's first use of the collection: indexes, then the counts."""
    backend = BACKENDS['mongodb']
    store = backend(backend.parse_settings(ConfigReader(driver_config(uri, collection))))
    try:
        await store.count_events(EventFilter(TARGET))
    finally:
        await store.close()


async def prepare(uri: str, target_events: int) -> str:
    loaded = load(uri, target_events)
    started = time.monotonic()
    await migrate(uri)
    migrated = time.monotonic() - started
    rows = total_rows(target_events)
    return (f'mongodb: {rows:,} documents loaded with insert_many in {loaded:.1f}s '
            f'({rows / loaded:,.0f}/s), migrated by the extension (indexes, counts) in '
            f'{migrated:.1f}s.')


def direct_page(uri: str, page_size: int, status: Optional[str] = None, hint: bool = True,
                ) -> Tuple[Callable[[], Awaitable[Any]], Dict[str, Any]]:
    """The extension's first-page query (filter, projection, sort, hint, limit) sent by bare
    PyMongo, and what SecantusDB's explain says it examined to answer it: the server's
    own cost, without the extension, FastAPI or the driver's asyncio layer. Without `hint`
    it is the query the Data API sends (it has no hint parameter)."""
    client = MongoClient(uri)
    events = client[APP_DATABASE][COLLECTION]
    where = EventFilter(TARGET, status=status)
    query = {'filter': documents.page_filter(where, None, None),
             'projection': documents.LISTED_PROJECTION,
             'sort': list(documents.NEWEST_FIRST), 'limit': page_size + 1}
    if hint:
        query['hint'] = documents.PAGE_INDEX[status is not None]
    stats = events.find(**query).explain().get('executionStats', {})

    async def call() -> Any:
        found = list(events.find(**query))
        if len(found) != page_size + 1:
            raise RuntimeError(f'pymongo: {len(found)} events, not {page_size + 1}')
        return found

    call.close = client.close  # type: ignore[attr-defined]
    return call, stats
