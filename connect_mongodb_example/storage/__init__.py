"""Storage backends. Registering a backend is one line in BACKENDS."""
from typing import Dict, Type

from connect_mongodb_example.storage.base import EventStore
from connect_mongodb_example.storage.dataapi import DataApiEventStore
from connect_mongodb_example.storage.mongodb import MongoEventStore
from connect_mongodb_example.storage.sql import SqlEventStore

BACKENDS: Dict[str, Type[EventStore]] = {
    store.name: store for store in (
        SqlEventStore,
        MongoEventStore,
        DataApiEventStore,
    )
}

__all__ = ['BACKENDS', 'EventStore']
