"""What the extension stored for each delivered event, read through its own storage API.

No SQL here: the same `load_settings` + `stores_for` + `EventStore.find` (and
`get_installation`, `count_events`) the extension uses, so the check holds for every
backend a fork adds.
"""
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from connect_mongodb_example.errors import InvalidRequest, StorageRejected, StorageUnavailable
from connect_mongodb_example.event_record import EventRecord, build_record
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.installation_record import InstallationRecord
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.base import EventFilter, EventStore
from connect_mongodb_example.storage.registry import close_all, stores_for
from localdev.connect_emulator import Delivery, Event

#: What a read may meet that says nothing about what is stored.
READ_ERRORS = (StorageUnavailable, StorageRejected)
#: `StoredEvent.expected` of an event stored straight into the storage by the demo.
SEEDED = 'seeded'
#: ... and of one Connect would not send (the extension does not subscribe to it).
NOT_SENT = 'not sent'


@dataclass(frozen=True)
class Deletion:
    """A stored record that a turn of the run (a job, an uninstall) deleted: `label` names
    the turn ("the Data lifecycle job"), `why` says why it was due; None: it was not."""

    label: str
    why: Optional[str]


@dataclass(frozen=True)
class StoredEvent:
    """One delivered (or seeded) event and the record each backend holds for it (None: not
    stored, or deleted since: see `deletions`, by backend).

    `expected` is the task result its input calls for, in the words of README's outcome
    table: `done` (stored), `fail` (the extension refuses it) or `skip` (the runner does not
    hand it to the extension); `not sent` (Connect would not send it) or `seeded` (stored by
    the demo itself); `expected_reason` says why for all but `done`.
    """

    delivery: Delivery
    records: Dict[str, Optional[EventRecord]]
    problem: Optional[str] = None
    expected: str = 'done'
    expected_reason: Optional[str] = None
    deletions: Dict[str, Deletion] = field(default_factory=dict)

    def kept_in(self, backend: str) -> bool:
        """The backend keeps the record, with every delivery counted, or deleted it as due."""
        record = self.records.get(backend)
        if record is None:
            deletion = self.deletions.get(backend)
            return deletion is not None and deletion.why is not None
        return record.delivery_count >= len(self.delivery.results)

    @property
    def stored(self) -> bool:
        return bool(self.records) and all(self.kept_in(backend) for backend in self.records)

    @property
    def missing(self) -> bool:
        """It should be stored (or have been deleted as due) and is not."""
        return self.expected in ('done', SEEDED) and not self.stored


@dataclass(frozen=True)
class InstallationRow:
    """An installation status change and the installation record each backend holds."""

    delivery: Delivery
    records: Dict[str, Optional[InstallationRecord]]
    problem: Optional[str] = None
    #: As for `StoredEvent`: `done`, `skip` (a status the extension does not subscribe to)
    #: or `not sent`.
    expected: str = 'done'
    expected_reason: Optional[str] = None

    @property
    def missing(self) -> bool:
        """It should have been handled and kept, and was not."""
        if self.expected != 'done':
            return False
        results = self.delivery.results
        return (not results or any(result.result != 'success' for result in results)
                or not self.records or any(record is None for record in self.records.values()))


def expected_outcome(event: Event, stores: Sequence[EventStore]) -> Tuple[str, Optional[str]]:
    """The result the event's input calls for, and why when it is not `done`."""
    if event.status not in PURCHASE_REQUEST.statuses:
        return 'skip', (f'status {event.status!r} is not one the extension subscribes to, '
                        f'so the runner does not call it')
    try:
        record = expected_record(event)
        for store in stores:
            store.check_storable(record)
    except InvalidRequest as error:
        return 'fail', str(error)
    return 'done', None


def expected_record(event: Event) -> EventRecord:
    """The record the extension makes of the event (its key, its installation)."""
    return build_record(event.request, PURCHASE_REQUEST, installation=event.installation)


async def find_records(
    stores: Sequence[EventStore], records: Iterable[EventRecord],
) -> Tuple[Dict[str, Dict[str, Optional[EventRecord]]], Dict[str, str]]:
    """What each store (by description) holds of each record (by key), and the stores that
    could not be read, with why."""
    records = list(records)
    found: Dict[str, Dict[str, Optional[EventRecord]]] = {}
    problems: Dict[str, str] = {}
    for store in stores:
        name = store.describe()
        found[name] = {}
        try:
            for record in records:
                matches = await store.find(record.request_id, record.installation_id)
                found[name][record.key] = next(
                    (match for match in matches if match.key == record.key), None)
        except READ_ERRORS as error:
            problems[name] = f'cannot read back: {error}'
            found[name] = {record.key: None for record in records}
    return found, problems


def selected_stores(variables: Mapping[str, str]) -> List[EventStore]:
    return stores_for(load_settings(variables))


async def read_back(
    deliveries: List[Delivery],
    variables: Mapping[str, str],
    deletions: Optional[Mapping[Tuple[str, str], Deletion]] = None,
) -> List[StoredEvent]:
    """The stored record of every purchase-request delivery, from every backend the
    variables select; `deletions` ((backend, key): deletion) says which a turn deleted."""
    try:
        return await read_events(selected_stores(variables), deliveries, deletions or {})
    finally:
        await close_all()


async def read_events(
    stores: Sequence[EventStore],
    deliveries: List[Delivery],
    deletions: Mapping[Tuple[str, str], Deletion],
    expected: Optional[str] = None,
) -> List[StoredEvent]:
    """As `read_back`, with the stores given; `expected` (SEEDED) for every row, else what
    each event's input calls for."""
    rows = []
    for delivery in deliveries:
        event = delivery.event
        if delivery.not_sent:
            rows.append(StoredEvent(delivery, {}, expected=NOT_SENT,
                                    expected_reason=delivery.not_sent))
            continue
        outcome, why = (expected, None) if expected else expected_outcome(event, stores)
        if outcome not in ('done', SEEDED):
            rows.append(StoredEvent(delivery, {}, expected=outcome, expected_reason=why))
            continue
        record = expected_record(event)
        found, problems = await find_records(stores, [record])
        rows.append(StoredEvent(
            delivery,
            {name: records[record.key] for name, records in found.items()},
            problem='; '.join(problems.values()) or None,
            expected=outcome,
            deletions={name: deletions[(name, record.key)] for name in found
                       if (name, record.key) in deletions},
        ))
    return rows


async def read_installations(
    stores: Sequence[EventStore],
    deliveries: List[Delivery],
    subscriptions: Optional[Mapping[str, Sequence[str]]],
    event_type: str,
) -> List[InstallationRow]:
    """The installation record each store keeps after each status change delivery."""
    rows = []
    for delivery in deliveries:
        change = delivery.event
        if delivery.not_sent:
            rows.append(InstallationRow(delivery, {}, expected=NOT_SENT,
                                        expected_reason=delivery.not_sent))
            continue
        statuses = (subscriptions or {}).get(event_type, [change.status])
        if change.status not in statuses:
            rows.append(InstallationRow(delivery, {}, expected='skip', expected_reason=(
                f'status {change.status!r} is not one the extension subscribes to, so the '
                f'runner does not call it')))
            continue
        records: Dict[str, Optional[InstallationRecord]] = {}
        problems = []
        for store in stores:
            try:
                records[store.describe()] = await store.get_installation(change.installation_id)
            except READ_ERRORS as error:
                records[store.describe()] = None
                problems.append(f'cannot read back: {error}')
        rows.append(InstallationRow(delivery, records, problem='; '.join(problems) or None))
    return rows


async def count_by_installation(
    stores: Sequence[EventStore], installation_ids: Iterable[str],
) -> Dict[str, Dict[str, Optional[int]]]:
    """installation id: {store: how many events it keeps of it (None: cannot be read)}."""
    counts: Dict[str, Dict[str, Optional[int]]] = {}
    for installation_id in installation_ids:
        counts[installation_id] = {}
        for store in stores:
            try:
                counts[installation_id][store.describe()] = await store.count_events(
                    EventFilter(installation_id))
            except READ_ERRORS:
                counts[installation_id][store.describe()] = None
    return counts
