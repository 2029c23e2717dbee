"""The storage logic both MongoDB backends share: the driver backend (`mongodb`) and the Data
API one (`dataapi`) differ only in how they reach the collections (`MongoCollection`).

Documents, filters and indexes are in `mongo_documents`, the counts in `mongo_counts`, the
schema version and its migrations in `mongo_schema`.
"""
import asyncio
import contextlib
import logging
import time
from abc import abstractmethod
from datetime import datetime
from typing import List, Optional, Tuple

import bson

from connect_mongodb_example.errors import (
    DuplicateKey,
    ExtensionError,
    InvalidRequest,
    StorageError,
    StorageUnavailable,
    first_line,
)
from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.installation_record import InstallationRecord
from connect_mongodb_example.storage import mongo_counts, mongo_schema
from connect_mongodb_example.storage import mongo_documents as documents
from connect_mongodb_example.storage.base import EventFilter, EventStore, PageCursor
from connect_mongodb_example.storage.mongo_collection import Collections
from connect_mongodb_example.storage.mongo_documents import COUNTING

logger = logging.getLogger(__name__)

# Ample for one request's records (one per status change) and a bound on a runaway reply.
FIND_LIMIT = 10000
#: Installations read per request when listing them all.
INSTALLATIONS_PAGE = 1000
#: How often reads look for counts a stopped process left a write short (see `mongo_counts`).
SWEEP_INTERVAL_SECONDS = 60.0
#: What a save reads back: the delivery count, and whose the counting marker is.
SAVED_PROJECTION = {'_id': False, 'delivery_count': True, COUNTING: True}
#: What a delete reads of each event: enough to take it off its count.
DELETED_PROJECTION = {'_id': True, 'installation_id': True, 'status': True}


class MongoStore(EventStore):
    """An `EventStore` over MongoDB collections; subclasses say how to reach them."""

    def __init__(self) -> None:
        self._ready_collections: Optional[Collections] = None
        self._preparing: Optional[asyncio.Future[Tuple[Collections, dict]]] = None
        self._schema: dict = {}
        self._next_sweep = 0.0
        self._sweeping: Optional[asyncio.Future] = None

    # -- what a backend provides ------------------------------------------------------------

    @abstractmethod
    def _collections(self) -> Collections:
        """The collections, without any I/O (connections open on first use)."""

    def _index_creator(self) -> Optional[mongo_schema.IndexStep]:
        """What creates the indexes of `mongo_schema.INDEX_VERSION`; None where the backend
        cannot (the Data API has no such action)."""
        return None

    async def _create_retention_index(self) -> None:
        """Make sure the index of deletes across installations exists, where this backend
        can create indexes."""
        return None

    # -- events -----------------------------------------------------------------------------

    async def save(self, record: EventRecord) -> int:
        cols = await self._ready()
        marker = bson.ObjectId() if record.installation_id is not None else None
        query = documents.key_filter(record)
        update = documents.upsert_update(record, marker)
        try:
            document = await cols.events.upsert_and_read(query, update, SAVED_PROJECTION)
        except DuplicateKey:
            # Two first deliveries raced on the unique index and the other one inserted the
            # document: the same update now matches it, so this delivery is still counted.
            document = await cols.events.upsert_and_read(query, update, SAVED_PROJECTION)
        if not document or 'delivery_count' not in document:
            raise StorageUnavailable(
                f'{self.describe()}: {record.key} was written but could not be read back')
        if marker is not None and documents.same_marker(document.get(COUNTING), marker):
            # This save created the event (a redelivery's upsert sets no marker).
            # If that fails the event is stored but not counted: its marker stays, and a
            # sweep recounts (the error is logged).
            with contextlib.suppress(StorageError):
                await mongo_counts.finish(mongo_counts.count_creation(cols, record, marker),
                                          self.describe())
        return int(document['delivery_count'])

    async def find(
        self, request_id: str, installation_id: Optional[str] = None,
    ) -> List[EventRecord]:
        if not documents.holdable(request_id, installation_id):
            return []
        cols = await self._ready()
        found = await cols.events.find(
            documents.request_filter(request_id, installation_id), limit=FIND_LIMIT,
            projection=documents.FULL_PROJECTION, sort=documents.SORT)
        return [documents.to_record(document) for document in found]

    async def list_events(
        self,
        where: EventFilter,
        *,
        limit: int,
        after: Optional[PageCursor] = None,
        before: Optional[PageCursor] = None,
        offset: int = 0,
        full: bool = False,
    ) -> List[EventRecord]:
        documents.check_window(limit, offset)
        cursor = after or before
        if limit == 0 or not documents.holdable(
                where.installation_id, where.status, where.request_id,
                cursor.key if cursor else None):
            return []
        cols = await self._ready()
        found = await cols.events.find(
            documents.page_filter(where, after, before),
            limit=limit,
            skip=offset,
            projection=documents.FULL_PROJECTION if full else documents.LISTED_PROJECTION,
            # The previous page is the nearest newer events: read toward them, then turn.
            sort=documents.OLDEST_FIRST if before is not None else documents.NEWEST_FIRST,
            hint=None if where.request_id else documents.PAGE_INDEX[where.status is not None],
        )
        if before is not None:
            found.reverse()
        return [documents.to_record(document) for document in found]

    async def count_events(self, where: EventFilter) -> int:
        if not documents.holdable(where.installation_id, where.status, where.request_id):
            return 0
        cols = await self._ready()
        if where.request_id is not None:
            # A request has a few events: counting their index entries is cheap.
            return await cols.events.count(documents.events_filter(where))
        # Repairs run beside the read: a long one (after an upgrade) must not delay pages.
        self._start_sweep(cols)
        return await mongo_counts.read(cols, where.installation_id, where.status)

    async def delete_events(
        self,
        *,
        limit: int,
        installation_id: Optional[str] = None,
        received_before: Optional[datetime] = None,
    ) -> int:
        if installation_id is None and received_before is None:
            raise InvalidRequest('deleting events needs an installation or a time')
        documents.check_window(limit, 0)
        if limit == 0 or not documents.holdable(installation_id):
            return 0
        cols = await self._ready()
        # Repairs first, so that the counts this call changes are sound.
        await self._swept(cols)
        # Events whose count is under way are left to their save (the next run deletes them).
        query: dict = {COUNTING: {'$exists': False}}
        if installation_id is not None:
            query['installation_id'] = installation_id
            sort, hint = documents.OLDEST_FIRST, documents.RECEIVED_INDEX
        else:
            await self._create_retention_index()
            sort, hint = (('received_at', 1),), documents.RETENTION_INDEX[0]
        if received_before is not None:
            query['received_at'] = {'$lt': received_before}
        while True:
            batch = await cols.events.find(query, limit=limit, sort=sort, hint=hint,
                                           projection=DELETED_PROJECTION)
            if not batch:
                return 0
            deleted = await mongo_counts.finish(mongo_counts.delete_batch(cols, batch),
                                                self.describe())
            if deleted:
                return deleted
            # A racing caller deleted this whole batch first: there may be more.

    # -- installations ----------------------------------------------------------------------

    async def save_installation(self, installation: InstallationRecord) -> InstallationRecord:
        installation_id = installation.installation_id
        if not documents.holdable(installation_id):
            raise InvalidRequest(f'{self.describe()}: the installation id {installation_id!r} '
                                 'is not valid text')
        cols = await self._ready()
        query = {'_id': installation_id, 'changed_at': {'$lte': installation.changed_at}}
        update = {'$set': documents.installation_document(installation)}
        for _ in range(2):
            try:
                await cols.installations.update_one(query, update, upsert=True)
                break
            except DuplicateKey:
                # A later change is stored (the filter missed it and the upsert collided
                # with it), or a racing first change inserted it: then the retry matches.
                continue
        stored = await cols.installations.find_one({'_id': installation_id})
        if stored is None:
            raise StorageUnavailable(f'{self.describe()}: installation {installation_id} was '
                                     'written but could not be read back')
        return documents.to_installation(stored)

    async def get_installation(self, installation_id: str) -> Optional[InstallationRecord]:
        if not documents.holdable(installation_id):
            return None
        cols = await self._ready()
        stored = await cols.installations.find_one({'_id': installation_id})
        return documents.to_installation(stored) if stored else None

    async def list_installations(self) -> List[InstallationRecord]:
        cols = await self._ready()
        found: List[InstallationRecord] = []
        query: dict = {}
        while True:
            page = await cols.installations.find(query, limit=INSTALLATIONS_PAGE,
                                                 sort=(('_id', 1),))
            found.extend(documents.to_installation(stored) for stored in page)
            if len(page) < INSTALLATIONS_PAGE:
                return found
            query = {'_id': {'$gt': page[-1]['_id']}}

    # -- first use --------------------------------------------------------------------------

    def _forget_collections(self) -> None:
        """After close: the next use checks the schema again, on new connections."""
        self._ready_collections = None
        self._preparing = None
        sweeping, self._sweeping = self._sweeping, None
        if sweeping is not None:
            sweeping.cancel()

    async def _ready(self) -> Collections:
        """The collections, once their schema is current (migrated on first use)."""
        if self._ready_collections is not None:
            return self._ready_collections
        if self._preparing is None or (self._preparing.done() and (
                self._preparing.cancelled() or self._preparing.exception() is not None)):
            # One preparation per store, shared by every task, which goes on if they are
            # cancelled (a storage timeout): a migration can take longer than one save.
            self._preparing = asyncio.ensure_future(self._prepare())
        preparing = self._preparing
        cols, schema = await asyncio.shield(preparing)
        if preparing is self._preparing:  # not closed meanwhile: keep them for every call
            self._schema = schema
            self._ready_collections = cols
        return cols

    async def _prepare(self) -> Tuple[Collections, dict]:
        cols = self._collections()
        schema = await mongo_schema.ensure(cols, self.describe(), self._index_creator())
        return cols, schema

    def _start_sweep(self, cols: Collections) -> None:
        """Repair counts left a write short (see `mongo_counts`) in a task of its own, at
        most once per SWEEP_INTERVAL_SECONDS."""
        now = time.monotonic()
        if now >= self._next_sweep and (self._sweeping is None or self._sweeping.done()):
            self._next_sweep = now + SWEEP_INTERVAL_SECONDS
            self._sweeping = asyncio.ensure_future(self._sweep(cols))

    async def _swept(self, cols: Collections) -> None:
        """Repair counts left a write short, in a sweep that starts now (after any under
        way, which may have started before the writes it should see)."""
        running = self._sweeping
        if running is not None and not running.done():
            await asyncio.shield(running)
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL_SECONDS
        self._sweeping = asyncio.ensure_future(self._sweep(cols))
        await asyncio.shield(self._sweeping)

    async def _sweep(self, cols: Collections) -> None:
        try:
            await mongo_counts.sweep(cols, self.describe())
            self._schema = await mongo_schema.recount_if_due(cols, self._schema,
                                                             self.describe())
        except ExtensionError as error:
            # Reads and deletes go on; the next sweep tries again.
            logger.warning('%s: repairing the counts failed: %s', self.describe(),
                           first_line(error))


def collection_names(events: str) -> Tuple[str, str, str, str]:
    """The events collection and those named from it: counts, installations, schema."""
    return (events, events + documents.COUNTS_SUFFIX, events + documents.INSTALLATIONS_SUFFIX,
            events + documents.SCHEMA_SUFFIX)

