"""The one interface every storage backend implements."""
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Hashable, List, Optional, Tuple

from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.variables import ConfigReader, Variable


@dataclass(frozen=True)
class EventFilter:
    """Which events a read returns: always one installation's, optionally narrowed.

    The installation is required so that no read can return every installation's events.
    """

    installation_id: str
    status: Optional[str] = None
    request_id: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.installation_id, str) or not self.installation_id:
            raise ValueError('an event read needs the installation id')


class EventStore(ABC):
    """Keeps event records, one per idempotency key.

    Constructing a store does no I/O: connections are opened on first use, so a store can be
    created from any task and shared by every task of the process (see `registry`).
    """

    #: The name users put in STORAGE_BACKENDS.
    name: ClassVar[str]
    #: The configuration variables this backend reads.
    variables: ClassVar[Tuple[Variable, ...]] = ()

    @classmethod
    @abstractmethod
    def parse_settings(cls, reader: ConfigReader) -> Hashable:
        """Checked, hashable settings; equal settings share one store per process."""

    @abstractmethod
    def __init__(self, settings: Hashable):
        ...

    def check_storable(self, record: EventRecord) -> None:
        """Raise `InvalidRequest` if this store could never keep the record (e.g. too large).

        Called for every selected store before any of them writes, so that a record one
        backend refuses is written nowhere instead of partially. Stores without limits keep
        this default, which accepts every record.
        """
        return None

    @abstractmethod
    async def save(self, record: EventRecord) -> int:
        """Store the record, or count one more delivery of it; return its delivery count.

        Must be idempotent on `record.key`. Raises `StorageUnavailable` when a retry may
        succeed and `StorageRejected` when the store refused the write.
        """

    @abstractmethod
    async def find(
        self, request_id: str, installation_id: Optional[str] = None,
    ) -> List[EventRecord]:
        """The records of a request, oldest first; only one installation's when given."""

    @abstractmethod
    async def list_events(
        self, where: EventFilter, *, limit: int, offset: int = 0,
    ) -> List[EventRecord]:
        """A page of the matching records, newest first: `last_received_at` descending, then
        `key`. Pages carry no request documents (`request` is empty): they can be large,
        and `find` returns them."""

    @abstractmethod
    async def count_events(self, where: EventFilter) -> int:
        """How many records match."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise `StorageUnavailable` unless the store answers."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; the store may be used again afterwards (it reconnects)."""

    def describe(self) -> str:
        """Where the store writes, safe to log (no passwords or keys)."""
        return self.name
