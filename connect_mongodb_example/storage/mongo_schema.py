"""The version of what the MongoDB collections hold, and the migrations that bring an
existing collection up to it, safe when every worker process and replica starts at once.

The schema collection holds one document, `{_id: 'schema', indexes: 2, data: 1}`, with two
versions: `indexes`, the indexes of the events collection, which only the driver backend
can create (the Data API has no such action), and `data`, what the documents hold, which
both backends migrate. The first process to find a version behind takes the migration lock
(a document with an expiry, renewed while it works) and migrates; the others wait until the
versions are current. A process that dies while migrating leaves a lock that expires after
`LOCK_SECONDS`, and the next one takes over. Every step can be run again (creating an index
that exists, dropping one that does not, recounting), so a migration cut short is finished
by the next one.

Index versions: 1, the first version's indexes (key, request, and pages by
last_received_at), recorded by no document; 2, pages by received_at and key, the counting
marker's index, and the first version's page indexes dropped.
Data versions: 1, events counted per installation and status (see `mongo_counts`).
"""
import asyncio
import logging
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Optional

import bson

from connect_mongodb_example.errors import DuplicateKey, ExtensionError, first_line
from connect_mongodb_example.event_record import utcnow
from connect_mongodb_example.storage import mongo_counts
from connect_mongodb_example.storage.mongo_collection import Collections, MongoCollection
from connect_mongodb_example.storage.mongo_documents import parse_moment

logger = logging.getLogger(__name__)

INDEX_VERSION = 2
DATA_VERSION = 1
SCHEMA_ID = 'schema'
LOCK_ID = 'migration'
#: A migration lock not renewed for this long was left by a process that stopped.
LOCK_SECONDS = 60.0
RENEW_SECONDS = LOCK_SECONDS / 4
#: How often a process waiting for another one's migration looks again.
POLL_SECONDS = 0.25
IndexStep = Callable[[], Awaitable[None]]


async def ensure(cols: Collections, where: str, indexes: Optional[IndexStep] = None,
                 ) -> Dict[str, Any]:
    """Return the schema document once every version this backend migrates is current,
    migrating (or waiting for the process that does) first. `indexes` creates the indexes
    of INDEX_VERSION; a backend that cannot create indexes gives none."""
    waiting = False
    while True:
        schema = await cols.schema.find_one({'_id': SCHEMA_ID}) or {}
        if not _behind(schema, indexes):
            return schema
        owner = str(bson.ObjectId())
        if await _acquire(cols.schema, owner):
            try:
                async with _renewed(cols.schema, owner, where):
                    await _migrate(cols, where, indexes)
            finally:
                await cols.schema.delete_one({'_id': LOCK_ID, 'owner': owner})
            continue
        if not waiting:
            logger.info('%s: waiting for another process to migrate the collection', where)
            waiting = True
        await asyncio.sleep(POLL_SECONDS)


async def recount_if_due(cols: Collections, schema: Dict[str, Any], where: str,
                         ) -> Dict[str, Any]:
    """After a data migration, the events that replicas still running the previous version
    wrote meanwhile went uncounted: once `mongo_counts.GRACE` has passed (they are gone),
    one process recounts every installation. Returns the schema document as it is now."""
    due = schema.get('recount_after')
    if due is None or parse_moment(due) > utcnow():
        return schema
    owner = str(bson.ObjectId())
    if not await _acquire(cols.schema, owner):
        return schema  # another process migrates or recounts
    try:
        async with _renewed(cols.schema, owner, where):
            schema = await cols.schema.find_one({'_id': SCHEMA_ID}) or {}
            if schema.get('recount_after') is not None:
                recounted = await mongo_counts.recount_all(cols)
                await cols.schema.update_one({'_id': SCHEMA_ID},
                                             {'$unset': {'recount_after': ''}})
                logger.info('%s: recounted the events of %d installations after the upgrade',
                            where, recounted)
                schema = {key: value for key, value in schema.items()
                          if key != 'recount_after'}
    finally:
        await cols.schema.delete_one({'_id': LOCK_ID, 'owner': owner})
    return schema


def _behind(schema: Dict[str, Any], indexes: Optional[IndexStep]) -> bool:
    return (_version(schema, 'data') < DATA_VERSION
            or (indexes is not None and _version(schema, 'indexes') < INDEX_VERSION))


def _version(schema: Dict[str, Any], track: str) -> int:
    value = schema.get(track)
    return int(value) if isinstance(value, (int, float)) else 0


async def _migrate(cols: Collections, where: str, indexes: Optional[IndexStep]) -> None:
    # Read again under the lock: the previous holder may have finished just now.
    schema = await cols.schema.find_one({'_id': SCHEMA_ID}) or {}
    if indexes is not None and _version(schema, 'indexes') < INDEX_VERSION:
        logger.info('%s: creating the indexes of version %d', where, INDEX_VERSION)
        await indexes()
        await _record(cols.schema, {'indexes': INDEX_VERSION})
    if _version(schema, 'data') < DATA_VERSION:
        logger.info('%s: counting the stored events per installation and status', where)
        recounted = await mongo_counts.recount_all(cols)
        migrated = {'data': DATA_VERSION, 'data_migrated_at': utcnow()}
        if recounted:
            # Events stored before: replicas of the previous version may still be writing.
            migrated['recount_after'] = utcnow() + mongo_counts.GRACE
        await _record(cols.schema, migrated)
        logger.info('%s: counted the events of %d installations', where, recounted)


async def _record(schema: MongoCollection, fields: Dict[str, Any]) -> None:
    try:
        await schema.update_one({'_id': SCHEMA_ID}, {'$set': fields}, upsert=True)
    except DuplicateKey:
        # Another migrator (one whose lock had expired) inserted it first.
        await schema.update_one({'_id': SCHEMA_ID}, {'$set': fields}, upsert=True)


async def _acquire(schema: MongoCollection, owner: str) -> bool:
    """Take the migration lock unless another process holds it and renewed it lately."""
    now = utcnow()
    try:
        await schema.update_one(
            {'_id': LOCK_ID, 'expires': {'$lt': now}},
            {'$set': {'owner': owner, 'expires': now + timedelta(seconds=LOCK_SECONDS)}},
            upsert=True)
    except DuplicateKey:
        return False  # the lock exists and has not expired
    return True


@asynccontextmanager
async def _renewed(schema: MongoCollection, owner: str, where: str) -> AsyncIterator[None]:
    """Renew the lock while the block runs (an index build may take minutes)."""
    async def renew() -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                await schema.update_one(
                    {'_id': LOCK_ID, 'owner': owner},
                    {'$set': {'expires': utcnow() + timedelta(seconds=LOCK_SECONDS)}})
            except ExtensionError as error:
                # The migration goes on: its steps are safe to run twice.
                logger.warning('%s: could not renew the migration lock: %s', where,
                               first_line(error))

    renewing = asyncio.ensure_future(renew())
    try:
        yield
    finally:
        renewing.cancel()
        with suppress(asyncio.CancelledError):
            await renewing
