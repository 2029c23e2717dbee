"""A complete storage backend, kept in memory: the README's "Add a storage backend" recipe
copies it into a fork's `connect_mongodb_example/storage/memory.py` and registers it.

Records live in the store object, lost when the process ends: no use in production. It
shows what a backend must do, and that doing it passes tests/storage/test_backend_contract.py.
"""
from dataclasses import dataclass, replace
from typing import Dict, List, Optional

from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.storage.base import EventFilter, EventStore
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

    async def list_events(
        self, where: EventFilter, *, limit: int, offset: int = 0,
    ) -> List[EventRecord]:
        found = sorted(self._matching(where), key=lambda record: record.key)
        found.sort(key=lambda record: record.last_received_at, reverse=True)
        # Pages carry no request documents.
        return [replace(record, request={}) for record in found[offset:offset + limit]]

    async def count_events(self, where: EventFilter) -> int:
        return len(self._matching(where))

    def _matching(self, where: EventFilter) -> List[EventRecord]:
        return [record for record in self._data.get(self._settings.name, {}).values()
                if record.installation_id == where.installation_id
                and where.status in (None, record.status)
                and where.request_id in (None, record.request_id)]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
