"""Store lifetime: one store per backend and settings, per process, closed on shutdown.

The runner builds a new application instance for every task, so stores cannot live on the
instance: they live here, created on first use and closed by `close_all` on shutdown.

Each installation (the `owner`) refers to the store of its current settings. When its
settings change (Apply Changes in the portal), the next event gets a new store; the old
one, once no owner refers to it and its in-flight writes (`in_use`) have finished, is
closed, so that its connections and threads do not stay open for the life of the process.
"""
import asyncio
import logging
from collections import Counter
from contextlib import asynccontextmanager
from typing import AsyncIterator, Dict, Hashable, List, Sequence, Set, Tuple

from connect_mongodb_example.settings import Settings
from connect_mongodb_example.storage import BACKENDS
from connect_mongodb_example.storage.base import EventStore

logger = logging.getLogger(__name__)

StoreKey = Tuple[str, Hashable]

_stores: Dict[StoreKey, EventStore] = {}
# (owner, backend name) -> the key of the store that owner's current settings select.
_owners: Dict[Tuple[Hashable, str], StoreKey] = {}
_in_flight: Counter = Counter()
# Stores no owner refers to any longer, closed as soon as no write is in flight.
_superseded: Set[StoreKey] = set()
# Closes under way, referenced so that they are not garbage-collected before they finish.
_closing: Set[asyncio.Task] = set()


def stores_for(settings: Settings, owner: Hashable = None) -> List[EventStore]:
    """The process-wide stores of the backends `settings` selects, in their order; `owner`
    (an installation id) now uses them."""
    return [get_store(BACKENDS[name], options, owner)
            for name, options in settings.backend_settings]


def get_store(backend: type, settings: Hashable, owner: Hashable = None) -> EventStore:
    """The process-wide store for these settings (no await between lookup and insert).

    `owner` (an installation id) now uses these settings: a store it used before, with
    other settings, that no other owner uses, is superseded.
    """
    key = (backend.name, settings)
    store = _stores.get(key)
    if store is None:
        store = backend(settings)
        _stores[key] = store
    _superseded.discard(key)
    previous = _owners.get((owner, backend.name))
    _owners[(owner, backend.name)] = key
    if previous is not None and previous != key and previous not in _owners.values():
        _superseded.add(previous)
    return store


@asynccontextmanager
async def in_use(stores: Sequence[EventStore]) -> AsyncIterator[None]:
    """Keeps `stores` open while the block writes; afterwards closes those superseded.

    Enter it right after `get_store`, with no await in between, so that no other task can
    close a store between the lookup and the write.
    """
    keys = [key for key, store in _stores.items() if any(store is s for s in stores)]
    _in_flight.update(keys)
    try:
        yield
    finally:
        _in_flight.subtract(keys)
        _close_superseded()


def _close_superseded() -> None:
    """Close, in the background, the superseded stores no write uses any longer: closing a
    pool can wait for a statement abandoned at a timeout, which must not hold up an event."""
    for key in [key for key in _superseded if _in_flight[key] <= 0]:
        _superseded.discard(key)
        del _in_flight[key]
        store = _stores.pop(key, None)
        if store is not None:
            task = asyncio.get_running_loop().create_task(_close(store, 'its settings changed'))
            _closing.add(task)
            task.add_done_callback(_closing.discard)


async def _close(store: EventStore, why: str) -> None:
    try:
        await store.close()
        logger.info('Closed %s: %s', store.describe(), why)
    except Exception:
        logger.exception('Could not close the %s store', store.describe())


async def release(stores: Sequence[EventStore]) -> None:
    """Close the connections of `stores`, which stay registered and reconnect on first use:
    for a process that used them once and may never again (the start-up check). A store a
    write is using is left open."""
    for key, store in list(_stores.items()):
        if _in_flight[key] <= 0 and any(store is s for s in stores):
            await _close(store, 'released, it reconnects on first use')


async def close_all() -> None:
    """Close every store, and wait for the closes under way; one failing to close does not
    keep the others open."""
    stores = list(_stores.values())
    _stores.clear()
    _owners.clear()
    _in_flight.clear()
    _superseded.clear()
    for store in stores:
        await _close(store, 'shutting down')
    await asyncio.gather(*_closing)
