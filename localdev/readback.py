"""What the extension stored for each delivered event, read through its own storage API.

No SQL here: the same `load_settings` + `stores_for` + `EventStore.find` the extension uses,
so the check holds for every backend a fork adds.
"""
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from connect_mongodb_example.errors import InvalidRequest, StorageRejected, StorageUnavailable
from connect_mongodb_example.event_record import EventRecord, build_record
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.base import EventStore
from connect_mongodb_example.storage.registry import close_all, stores_for
from localdev.connect_emulator import Delivery, Event


@dataclass(frozen=True)
class StoredEvent:
    """One delivered event and the record each backend holds for it (None: not stored).

    `expected` is the task result its input calls for, in the words of README's outcome
    table: `done` (stored), `fail` (the extension refuses it) or `skip` (the runner does not
    hand it to the extension); `expected_reason` says why for the last two.
    """

    delivery: Delivery
    records: Dict[str, Optional[EventRecord]]
    problem: Optional[str] = None
    expected: str = 'done'
    expected_reason: Optional[str] = None

    @property
    def stored(self) -> bool:
        return bool(self.records) and all(
            record is not None and record.delivery_count >= len(self.delivery.results)
            for record in self.records.values()
        )

    @property
    def missing(self) -> bool:
        """It should have been stored and was not."""
        return self.expected == 'done' and not self.stored


def expected_outcome(event: Event, stores: Sequence[EventStore]) -> Tuple[str, Optional[str]]:
    """The result the event's input calls for, and why when it is not `done`."""
    if event.status not in PURCHASE_REQUEST.statuses:
        return 'skip', (f'status {event.status!r} is not one the extension subscribes to, '
                        f'so the runner does not call it')
    try:
        record = build_record(event.request, PURCHASE_REQUEST, installation=event.installation)
        for store in stores:
            store.check_storable(record)
    except InvalidRequest as error:
        return 'fail', str(error)
    return 'done', None


async def read_back(
    deliveries: List[Delivery], variables: Mapping[str, str],
) -> List[StoredEvent]:
    """The stored record of every delivery, from every backend the variables select."""
    stores = stores_for(load_settings(variables))
    rows = []
    try:
        for delivery in deliveries:
            event = delivery.event
            expected, why = expected_outcome(event, stores)
            if expected != 'done':
                rows.append(StoredEvent(delivery, {}, expected=expected, expected_reason=why))
                continue
            expected_record = build_record(
                event.request, PURCHASE_REQUEST, installation=event.installation)
            records: Dict[str, Optional[EventRecord]] = {}
            problems = []
            for store in stores:
                try:
                    found = await store.find(
                        expected_record.request_id, expected_record.installation_id,
                    )
                except (StorageUnavailable, StorageRejected) as error:
                    found = []
                    problems.append(f'cannot read back: {error}')
                records[store.describe()] = next(
                    (record for record in found if record.key == expected_record.key), None,
                )
            rows.append(StoredEvent(delivery, records, problem='; '.join(problems) or None))
    finally:
        await close_all()
    return rows
