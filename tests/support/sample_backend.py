"""A complete storage backend, kept in memory: the README's "Add a storage backend" recipe
copies it into a fork's `connect_mongodb_example/storage/memory.py` and registers it.

Records live in the store object, lost when the process ends: no use in production. It
shows what a backend must do, and that doing it passes tests/storage/test_backend_contract.py.
"""
from dataclasses import dataclass, replace
from typing import Dict, List, Optional

from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.storage.base import EventStore
from connect_mongodb_example.variables import ConfigReader, Variable

MEMORY_STORE_NAME = Variable(
    'MEMORY_STORE_NAME', 'Name of the in-memory store the events go to.', default='events',
)


@dataclass(frozen=True)
class MemorySettings:
    name: str


class MemoryEventStore(EventStore):
    name = 'memory'
    variables = (MEMORY_STORE_NAME,)

    @classmethod
    def parse_settings(cls, reader: ConfigReader) -> MemorySettings:
        return MemorySettings(reader.text(MEMORY_STORE_NAME))

    def __init__(self, settings: MemorySettings):
        self._settings = settings
        # key -> record; the registry shares this store within the process.
        self._records: Dict[str, EventRecord] = {}

    def describe(self) -> str:
        return f'memory ({self._settings.name})'

    async def save(self, record: EventRecord) -> int:
        # No await between reading and writing: racing deliveries cannot both insert.
        stored = self._records.get(record.key)
        if stored is None:
            stored = replace(record, delivery_count=1, request_json='')
        else:
            stored = replace(stored, delivery_count=stored.delivery_count + 1,
                             last_received_at=record.last_received_at)
        self._records[record.key] = stored
        return stored.delivery_count

    async def find(
        self, request_id: str, installation_id: Optional[str] = None,
    ) -> List[EventRecord]:
        found = [record for record in self._records.values()
                 if record.request_id == request_id
                 and installation_id in (None, record.installation_id)]
        return sorted(found, key=lambda record: record.received_at)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
