"""How many events each installation has of each status, kept beside the events so that a
page's total reads a few small documents instead of an index entry per event.

The counts collection holds one document per installation and status (`count_id`). Events
without an installation are not counted: no read asks for them.

Without transactions (the Data API has none, nor a standalone server) an event and its count
are two writes, and a process may stop between them: killed, or cancelled by a storage
timeout. So each change of a count is bracketed by a mark that says "under way":

- a save that creates an event sets the event's `counting` marker in the same upsert
  (`$setOnInsert`, so a redelivery never does), adds one to the count, then removes the
  marker. The marker holds the save's own token, which is also how the save knows that it,
  and not a racing first delivery, created the event;
- a delete writes a lease naming the counts it is about to change, deletes each status's
  events with one `delete_many` and takes off exactly what that call deleted (racing
  deleters each take off their own), then removes the lease.

A marker or lease older than `GRACE` was left by a process that stopped: the counts it names
may be one write short, and `sweep` recounts those installations from the events. A
recount is exact while other processes keep writing: it reads each count's `version` (every
change adds one), counts the events, gives up if any marker or lease under way (younger than
`GRACE`) touches the installation, and sets the new count only if the version is unchanged.
Any write that a recount's event count missed or included either changed the version first
(the set fails, and the next sweep retries) or is still marked (it gives up).

`GRACE` assumes no process takes that long between two writes of one save or delete; the
save's time is bounded by STORAGE_TIMEOUT_SECONDS (at most 10 minutes) and the bookkeeping
by `BOOKKEEPING_SECONDS`. Clocks of the processes may differ by much less than `GRACE`.
"""
import asyncio
import logging
from datetime import datetime, timedelta
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Dict,
    List,
    Optional,
    Set,
    Tuple,
    TypeVar,
)

import bson

from connect_mongodb_example.errors import DuplicateKey, StorageUnavailable, first_line, within
from connect_mongodb_example.event_record import EventRecord, utcnow
from connect_mongodb_example.storage import mongo_documents as documents
from connect_mongodb_example.storage.mongo_collection import Collections, Document
from connect_mongodb_example.storage.mongo_documents import COUNTING

logger = logging.getLogger(__name__)
T = TypeVar('T')

#: How long a write may be under way before its marker or lease counts as abandoned.
GRACE = timedelta(minutes=15)
#: Longest wait for the count of a new event and the removal of its marker.
BOOKKEEPING_SECONDS = 60.0
#: Markers and leases one sweep reads at most; the next sweep takes the rest.
SWEEP_LIMIT = 100
#: More than the statuses an installation can have.
STATUSES_LIMIT = 1000
#: Recount attempts while other processes change the same counts.
RECOUNT_ATTEMPTS = 5
LEASE_PREFIX = 'lease:'
# Tasks finishing after their caller was cancelled, kept from the garbage collector.
_finishing: Set['asyncio.Task[Any]'] = set()


async def read(cols: Collections, installation_id: str, status: Optional[str]) -> int:
    """The installation's count, of one status or of all."""
    if status is not None:
        found = await cols.counts.find_one({'_id': documents.count_id(installation_id, status)},
                                           {'events': True})
        total = int(found['events']) if found else 0
    else:
        found_all = await cols.counts.find(documents.installation_counts(installation_id),
                                           limit=STATUSES_LIMIT, projection={'events': True})
        total = sum(int(found.get('events', 0)) for found in found_all)
    # Only a broken assumption (see GRACE) could make it negative: show none rather.
    return max(0, total)


async def count_creation(cols: Collections, record: EventRecord, marker: bson.ObjectId) -> None:
    """Add the event the save just created to its count, then remove its marker."""
    assert record.installation_id is not None
    add = {'$inc': {'events': 1, 'version': 1},
           '$setOnInsert': {'installation_id': record.installation_id, 'status': record.status}}
    where = {'_id': documents.count_id(record.installation_id, record.status)}
    try:
        await cols.counts.update_one(where, add, upsert=True)
    except DuplicateKey:
        # The first events of this status, created at once: the other upsert made the count.
        await cols.counts.update_one(where, add, upsert=True)
    await cols.events.update_one({'key': record.key, COUNTING: marker},
                                 {'$unset': {COUNTING: ''}})


async def delete_batch(cols: Collections, batch: List[Document]) -> int:
    """Delete the batch's events (by `_id`, with their installation and status); return how
    many this call deleted, each taken off its count."""
    groups: Dict[Tuple[Optional[str], Any], List[Any]] = {}
    for found in batch:
        installation_id = found.get('installation_id')
        group = (installation_id if isinstance(installation_id, str) else None,
                 found.get('status'))
        groups.setdefault(group, []).append(found['_id'])
    counted = [group for group in groups if group[0] is not None and isinstance(group[1], str)]
    lease = None
    if counted:
        lease = LEASE_PREFIX + str(bson.ObjectId())
        await cols.counts.insert_one({
            '_id': lease,
            'installations': sorted({installation_id for installation_id, _ in counted}),
            'counts': [documents.count_id(*group) for group in counted],
        })
    deleted = 0
    for group, ids in groups.items():
        # Per group, so that the number deleted is this group's: racing deleters of the same
        # events each delete, and take off, only what their own call removed.
        removed = await cols.events.delete_many({'_id': {'$in': ids}})
        deleted += removed
        if removed and group in counted:
            await take_off(cols, group[0], group[1], removed)
    if lease is not None:
        await cols.counts.delete_one({'_id': lease})
    return deleted


async def take_off(cols: Collections, installation_id: str, status: str, removed: int) -> None:
    await cols.counts.update_one({'_id': documents.count_id(installation_id, status)},
                                 {'$inc': {'events': -removed, 'version': 1}})


async def recount_installation(cols: Collections, installation_id: str) -> bool:
    """Set the installation's counts from its events; False when writes under way (or
    changing the counts meanwhile) made it give up: try again later."""
    fence = utcnow() - GRACE
    before = {found['_id']: found for found in await cols.counts.find(
        documents.installation_counts(installation_id), limit=STATUSES_LIMIT,
        projection={'status': True, 'version': True})}
    grouped = await cols.events.aggregate([
        {'$match': {'installation_id': installation_id}},
        {'$group': {'_id': '$status', 'events': {'$sum': 1}}},
    ])
    if await _under_way(cols, installation_id, fence):
        return False
    found = {documents.count_id(installation_id, group['_id']): (group['_id'], int(group['events']))
             for group in grouped if isinstance(group['_id'], str)}
    settled = True
    for key in sorted(set(before) | set(found)):
        events = found.get(key, (None, 0))[1]
        if key in before:
            matched = await cols.counts.update_one(
                {'_id': key, 'version': before[key].get('version')},
                {'$set': {'events': events}, '$inc': {'version': 1}})
            settled = settled and matched == 1
            continue
        try:
            await cols.counts.insert_one(documents.count_document(installation_id,
                                                                  found[key][0], events))
        except DuplicateKey:
            settled = False  # a save created it meanwhile
    if settled:
        # Markers their saves abandoned: the counts above include their events.
        await cols.events.update_many(
            {'installation_id': installation_id, COUNTING: {'$lt': documents.marker_at(fence)}},
            {'$unset': {COUNTING: ''}})
    return settled


async def recount_all(cols: Collections) -> int:
    """Recount every installation that has events; return how many. Raises `RecountBusy`
    when one stayed busy."""
    recounted = 0
    async for installation_id in installations_with_events(cols):
        await recount_until_settled(cols, installation_id)
        recounted += 1
    return recounted


async def recount_until_settled(cols: Collections, installation_id: str) -> None:
    for attempt in range(1, RECOUNT_ATTEMPTS + 1):
        if await recount_installation(cols, installation_id):
            return
        await asyncio.sleep(0.05 * attempt)
    raise RecountBusy(f'the counts of {installation_id} changed at every one of '
                      f'{RECOUNT_ATTEMPTS} recounts')


async def installations_with_events(cols: Collections) -> AsyncIterator[str]:
    """Every installation id of the events, in order, one index seek each (no scan)."""
    query: Dict[str, Any] = {'installation_id': {'$gte': ''}}
    while True:
        found = await cols.events.find(
            query, limit=1, projection={'_id': False, 'installation_id': True},
            sort=(('installation_id', 1),), hint=documents.PAGE_INDEX[False])
        if not found:
            return
        installation_id = found[0]['installation_id']
        yield installation_id
        query = {'installation_id': {'$gt': installation_id}}


async def sweep(cols: Collections, where: str) -> None:
    """Recount the installations whose counts a stopped process may have left a write short
    (markers and leases older than GRACE)."""
    fence = utcnow() - GRACE
    marked = await cols.events.find(
        {COUNTING: {'$lt': documents.marker_at(fence)}}, limit=SWEEP_LIMIT,
        projection={'_id': False, 'installation_id': True},
        hint=documents.COUNTING_INDEX)
    leases = await cols.counts.find(_leases(None, fence), limit=SWEEP_LIMIT)
    suspects = {found.get('installation_id') for found in marked}
    suspects.update(installation_id for lease in leases
                    for installation_id in lease.get('installations', ()))
    repaired = set()
    for installation_id in sorted(item for item in suspects if isinstance(item, str)):
        if await recount_installation(cols, installation_id):
            repaired.add(installation_id)
            logger.warning('%s: recounted the events of %s after an interrupted write',
                           where, installation_id)
    for lease in leases:
        if set(lease.get('installations', ())) <= repaired:
            await cols.counts.delete_one({'_id': lease['_id']})


async def finish(work: Awaitable[T], where: str) -> T:
    """Run `work` to its end even if the caller is cancelled (a storage timeout) meanwhile,
    so that a count is rarely left a write short; its result, or its error
    (`StorageUnavailable` after BOOKKEEPING_SECONDS)."""
    task = asyncio.ensure_future(within(work, BOOKKEEPING_SECONDS, where))
    _finishing.add(task)
    task.add_done_callback(_finished)
    return await asyncio.shield(task)


class RecountBusy(StorageUnavailable):
    """A recount gave up at every attempt: writes kept changing the counts. A later attempt
    may pass."""


async def _under_way(cols: Collections, installation_id: str, fence: datetime) -> bool:
    """Whether a save or a delete younger than GRACE is changing the installation's counts."""
    marked = await cols.events.find(
        {'installation_id': installation_id, COUNTING: {'$gte': documents.marker_at(fence)}},
        limit=1, projection={'_id': True}, hint=documents.COUNTING_INDEX)
    if marked:
        return True
    return bool(await cols.counts.find(_leases(fence, None, installation_id), limit=1,
                                       projection={'_id': True}))


def _leases(since: Optional[datetime], until: Optional[datetime],
            installation_id: Optional[str] = None) -> Dict[str, Any]:
    """Leases written from `since` until `until` (an open end when None), of one
    installation when given; their ids sort by time (an ObjectId's hex starts with it)."""
    lowest = LEASE_PREFIX + (str(documents.marker_at(since)) if since else '')
    highest = (LEASE_PREFIX + str(documents.marker_at(until)) if until
               else LEASE_PREFIX[:-1] + chr(ord(LEASE_PREFIX[-1]) + 1))
    query: Dict[str, Any] = {'_id': {'$gte': lowest, '$lt': highest}}
    if installation_id is not None:
        query['installations'] = installation_id
    return query


def _finished(task: 'asyncio.Task[Any]') -> None:
    _finishing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # Its caller may be gone: the error would go unseen otherwise.
        logger.warning('count bookkeeping stopped (the next sweep repairs it): %s',
                       first_line(task.exception()))
