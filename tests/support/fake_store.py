"""An in-memory store whose failures a test controls, registered as backend `fake`."""
import asyncio
from dataclasses import dataclass, replace
from typing import ClassVar, Dict, List, Optional

from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.storage.base import EventFilter, EventStore
from connect_mongodb_example.variables import ConfigReader, Variable

FAKE_STORE_NAME = Variable('FAKE_STORE_NAME', 'Which fake store to use.', default='default')


@dataclass(frozen=True)
class FakeSettings:
    name: str


class FakeEventStore(EventStore):
    """Keeps records in a dict shared per settings name; `fail_with`, `refuse` and `hang`
    inject faults."""

    name = 'fake'
    variables = (FAKE_STORE_NAME,)
    data: ClassVar[Dict[str, Dict[str, EventRecord]]] = {}

    @classmethod
    def parse_settings(cls, reader: ConfigReader) -> FakeSettings:
        return FakeSettings(reader.text(FAKE_STORE_NAME))

    def __init__(self, settings: FakeSettings):
        self.records = self.data.setdefault(settings.name, {})
        self.fail_with: Optional[BaseException] = None
        self.refuse: Optional[BaseException] = None
        self.hang = False
        self.closed = False

    def check_storable(self, record: EventRecord) -> None:
        if self.refuse is not None:
            raise self.refuse

    async def save(self, record: EventRecord) -> int:
        if self.hang:
            await asyncio.Event().wait()
        if self.fail_with is not None:
            raise self.fail_with
        stored = self.records.get(record.key)
        if stored is None:
            stored = record
        else:
            stored = replace(stored, delivery_count=stored.delivery_count + 1,
                             last_received_at=record.received_at)
        self.records[record.key] = stored
        return stored.delivery_count

    async def find(
        self, request_id: str, installation_id: Optional[str] = None,
    ) -> List[EventRecord]:
        return [
            record for record in self.records.values()
            if record.request_id == request_id
            and installation_id in (None, record.installation_id)
        ]

    async def list_events(
        self, where: EventFilter, *, limit: int, offset: int = 0,
    ) -> List[EventRecord]:
        if self.fail_with is not None:
            raise self.fail_with
        found = sorted(self._matching(where), key=lambda record: record.key)
        found.sort(key=lambda record: record.last_received_at, reverse=True)
        return [replace(record, request={}) for record in found[offset:offset + limit]]

    async def count_events(self, where: EventFilter) -> int:
        if self.fail_with is not None:
            raise self.fail_with
        return len(self._matching(where))

    def _matching(self, where: EventFilter) -> List[EventRecord]:
        return [
            record for record in self.records.values()
            if record.installation_id == where.installation_id
            and where.status in (None, record.status)
            and where.request_id in (None, record.request_id)
        ]

    async def ping(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def close(self) -> None:
        self.closed = True
