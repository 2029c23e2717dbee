"""An in-memory store whose failures a test controls, registered as backend `fake`: the
recipe's memory backend, with faults injected and its data shared per settings name."""
import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional

from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.installation_record import InstallationRecord
from connect_mongodb_example.variables import ConfigReader, Variable
from tests.support.sample_backend import MemoryEventStore

FAKE_STORE_NAME = Variable('FAKE_STORE_NAME', 'Which fake store to use.', default='default')


@dataclass(frozen=True)
class FakeSettings:
    name: str


class FakeEventStore(MemoryEventStore):
    """Keeps records in dicts shared per settings name; `fail_with` (every call), `refuse`
    (check_storable) and `hang` (save) inject faults."""

    name = 'fake'
    variables = (FAKE_STORE_NAME,)
    data: ClassVar[Dict[str, Dict[str, EventRecord]]] = {}
    installations: ClassVar[Dict[str, Dict[str, InstallationRecord]]] = {}

    @classmethod
    def parse_settings(cls, reader: ConfigReader) -> FakeSettings:
        return FakeSettings(reader.text(FAKE_STORE_NAME))

    def __init__(self, settings: FakeSettings):
        super().__init__(settings)
        self._records = self.data.setdefault(settings.name, {})
        self._installations = self.installations.setdefault(settings.name, {})
        self.fail_with: Optional[BaseException] = None
        self.refuse: Optional[BaseException] = None
        self.hang = False
        self.closed = False

    @property
    def records(self) -> Dict[str, EventRecord]:
        return self._records

    def describe(self) -> str:
        return self.name

    def check_storable(self, record: EventRecord) -> None:
        if self.refuse is not None:
            raise self.refuse

    async def save(self, record: EventRecord) -> int:
        if self.hang:
            await asyncio.Event().wait()
        self._fail()
        return await super().save(record)

    async def list_events(self, *args: Any, **kwargs: Any) -> Any:
        self._fail()
        return await super().list_events(*args, **kwargs)

    async def count_events(self, *args: Any, **kwargs: Any) -> Any:
        self._fail()
        return await super().count_events(*args, **kwargs)

    async def save_installation(self, *args: Any, **kwargs: Any) -> Any:
        self._fail()
        return await super().save_installation(*args, **kwargs)

    async def delete_events(self, *args: Any, **kwargs: Any) -> Any:
        self._fail()
        return await super().delete_events(*args, **kwargs)

    async def ping(self) -> None:
        self._fail()

    async def close(self) -> None:
        self.closed = True

    def _fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with
