"""A complete storage backend, kept in memory: the README's "Add a storage backend" recipe
copies it into a fork's `connect_mongodb_example/storage/memory.py` and registers it.

Records live in the store object, lost when the process ends: no use in production. It
shows what a backend must do, and that doing it passes tests/storage/test_backend_contract.py.
"""
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Dict, List, Optional

from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.installation_record import InstallationRecord
from connect_mongodb_example.storage.base import (
    EventFilter,
    EventStore,
    PageCursor,
    newest_first,
)
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
        # key -> record, and installation id -> its record; the registry shares this store
        # within the process. No method awaits between reading and writing them, so racing
        # tasks cannot both insert one key.
        self._records: Dict[str, EventRecord] = {}
        self._installations: Dict[str, InstallationRecord] = {}

    def describe(self) -> str:
        return f'memory ({self._settings.name})'

    async def save(self, record: EventRecord) -> int:
        stored = self._records.get(record.key)
        if stored is None:
            stored = replace(record, delivery_count=1, request_json='')
        else:
            # Deliveries may be written in any order: keep the later receive time.
            stored = replace(stored, delivery_count=stored.delivery_count + 1,
                             last_received_at=max(stored.last_received_at,
                                                  record.last_received_at))
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
        self,
        where: EventFilter,
        *,
        limit: int,
        after: Optional[PageCursor] = None,
        before: Optional[PageCursor] = None,
        offset: int = 0,
        full: bool = False,
    ) -> List[EventRecord]:
        found = sorted(self._matching(where), key=newest_first, reverse=True)
        if after is not None:
            found = [record for record in found if newest_first(record) < _place(after)]
        if before is not None:
            # The nearest newer ones: the end of the newer part.
            found = [record for record in found if newest_first(record) > _place(before)]
            found = found[max(0, len(found) - offset - limit):len(found) - offset]
        else:
            found = found[offset:offset + limit]
        # Pages carry no request documents; an export (full) does.
        return found if full else [replace(record, request={}) for record in found]

    async def count_events(self, where: EventFilter) -> int:
        return len(self._matching(where))

    def _matching(self, where: EventFilter) -> List[EventRecord]:
        return [record for record in self._records.values()
                if record.installation_id == where.installation_id
                and where.status in (None, record.status)
                and where.request_id in (None, record.request_id)]

    async def save_installation(self, installation: InstallationRecord) -> InstallationRecord:
        stored = self._installations.get(installation.installation_id)
        if stored is None or stored.changed_at <= installation.changed_at:
            stored = self._installations[installation.installation_id] = installation
        return stored

    async def get_installation(self, installation_id: str) -> Optional[InstallationRecord]:
        return self._installations.get(installation_id)

    async def list_installations(self) -> List[InstallationRecord]:
        return [self._installations[key] for key in sorted(self._installations)]

    async def delete_events(
        self,
        *,
        limit: int,
        installation_id: Optional[str] = None,
        received_before: Optional[datetime] = None,
    ) -> int:
        doomed = [key for key, record in self._records.items()
                  if installation_id in (None, record.installation_id)
                  and (received_before is None or record.received_at < received_before)]
        for key in doomed[:limit]:
            del self._records[key]
        return len(doomed[:limit])

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


def _place(cursor: PageCursor) -> tuple:
    return cursor.received_at, cursor.key
