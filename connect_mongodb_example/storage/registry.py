"""Store lifetime: one store per backend and settings, per process, closed on shutdown.

The runner builds a new application instance for every task, so stores cannot live on the
instance: they live here, created on first use and closed by `close_all` on shutdown.
"""
import logging
from typing import Dict, Hashable, List, Tuple

from connect_mongodb_example.settings import Settings
from connect_mongodb_example.storage import BACKENDS
from connect_mongodb_example.storage.base import EventStore

logger = logging.getLogger(__name__)

_stores: Dict[Tuple[str, Hashable], EventStore] = {}


def stores_for(settings: Settings) -> List[EventStore]:
    """The process-wide stores of the backends `settings` selects, in their order."""
    return [get_store(BACKENDS[name], options) for name, options in settings.backend_settings]


def get_store(backend: type, settings: Hashable) -> EventStore:
    """The process-wide store for these settings (no await between lookup and insert)."""
    key = (backend.name, settings)
    store = _stores.get(key)
    if store is None:
        store = backend(settings)
        _stores[key] = store
    return store


async def close_all() -> None:
    """Close every store; one failing to close does not keep the others open."""
    stores = list(_stores.values())
    _stores.clear()
    for store in stores:
        try:
            await store.close()
        except Exception:
            logger.exception('Could not close the %s store', store.describe())
