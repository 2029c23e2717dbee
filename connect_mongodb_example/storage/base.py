"""The one interface every storage backend implements."""
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Hashable, List, Optional, Tuple

from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.installation_record import InstallationRecord
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


@dataclass(frozen=True)
class PageCursor:
    """A place in the order pages list events in, given by one event: pages continue just
    after it (older events) or just before it (newer ones).

    Events are listed newest first by when they were first received, then by key, both
    descending. No redelivery changes either, so a cursor keeps its place while events are
    written: walking the pages visits every event that was stored when the walk began
    exactly once, and its cost does not grow with the depth of the page.
    """

    received_at: datetime
    key: str

    @classmethod
    def of(cls, record: EventRecord) -> 'PageCursor':
        return cls(record.received_at, record.key)


def newest_first(record: EventRecord) -> Tuple[datetime, str]:
    """Sort key of the page order, to be used with `reverse=True`."""
    return record.received_at, record.key


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
        self,
        where: EventFilter,
        *,
        limit: int,
        after: Optional[PageCursor] = None,
        before: Optional[PageCursor] = None,
        offset: int = 0,
        full: bool = False,
    ) -> List[EventRecord]:
        """A page of the matching records, newest first (see `PageCursor` for the order).

        - `after`: only records after the cursor in that order (older): the next page;
        - `before`: only records before it (newer), the `limit` nearest to it, still newest
          first: the previous page. Never given together with `after`;
        - `offset`: records skipped first (after the cursor's place when there is one).

        Records carry no request document (`request` is empty) unless `full`: a page does not
        show them, an export does.
        """

    @abstractmethod
    async def count_events(self, where: EventFilter) -> int:
        """How many records match."""

    # -- the data lifecycle: installations, purges and retention -------------------------

    @abstractmethod
    async def save_installation(self, installation: InstallationRecord) -> InstallationRecord:
        """Keep `installation` unless the stored record of the same installation changed
        later (a greater `changed_at`); one with an equal `changed_at` replaces it. Return the
        record stored afterwards.

        Connect delivers status changes at least once and in any order: whatever the order
        and number of deliveries, from any number of processes, the stored record ends as
        the one with the greatest `changed_at`.
        """

    @abstractmethod
    async def get_installation(self, installation_id: str) -> Optional[InstallationRecord]:
        """The installation's stored record, or None if none was ever stored."""

    @abstractmethod
    async def list_installations(self) -> List[InstallationRecord]:
        """Every stored installation record, by installation id."""

    @property
    def delete_batch(self) -> int:
        """Events the data lifecycle job deletes with one `delete_events` call.

        Each call is one statement in one transaction and holds what that delete locks
        while it runs; reads go on meanwhile. A few hundred keeps that wait to one short
        statement and the key lists the document backends send small; larger batches only
        save round trips, which a background job has no need of. A store whose deletes lock
        more (SQLite's single write lock) returns fewer.
        """
        return 500

    @abstractmethod
    async def delete_events(
        self,
        *,
        limit: int,
        installation_id: Optional[str] = None,
        received_before: Optional[datetime] = None,
    ) -> int:
        """Delete at most `limit` events of `installation_id` (of every installation, and
        events of none, when None) first received before `received_before` (whenever, when
        None); one of the two is always given. Return how many this call deleted: 0 once none
        match.

        Works in batches so that writes and reads go on meanwhile; `count_events` follows
        each batch. Any number of callers may delete at once, and one may stop at any
        moment: every matching event is deleted once, and the counts stay exact.
        """

    @abstractmethod
    async def ping(self) -> None:
        """Raise `StorageUnavailable` unless the store answers."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; the store may be used again afterwards (it reconnects)."""

    def describe(self) -> str:
        """Where the store writes, safe to log (no passwords or keys)."""
        return self.name
