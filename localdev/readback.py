"""What the extension stored for each delivered event, read through its own storage API.

No SQL here: the same `load_settings` + `stores_for` + `EventStore.find` the extension uses,
so the check holds for every backend a fork adds.
"""
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional

from connect_mongodb_example.errors import InvalidRequest, StorageRejected, StorageUnavailable
from connect_mongodb_example.event_record import EventRecord, build_record
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import close_all, stores_for
from localdev.connect_emulator import Delivery


@dataclass(frozen=True)
class StoredEvent:
    """One delivered event and the record each backend holds for it (None: not stored)."""

    delivery: Delivery
    records: Dict[str, Optional[EventRecord]]
    problem: Optional[str] = None

    @property
    def stored(self) -> bool:
        return bool(self.records) and all(
            record is not None and record.delivery_count >= len(self.delivery.results)
            for record in self.records.values()
        )


async def read_back(
    deliveries: List[Delivery], variables: Mapping[str, str],
) -> List[StoredEvent]:
    """The stored record of every delivery, from every backend the variables select."""
    stores = stores_for(load_settings(variables))
    rows = []
    try:
        for delivery in deliveries:
            event = delivery.event
            try:
                expected = build_record(
                    event.request, PURCHASE_REQUEST, installation=event.installation)
            except InvalidRequest as error:
                rows.append(StoredEvent(delivery, {}, problem=str(error)))
                continue
            records: Dict[str, Optional[EventRecord]] = {}
            problems = []
            for store in stores:
                try:
                    found = await store.find(expected.request_id, expected.installation_id)
                except (StorageUnavailable, StorageRejected) as error:
                    found = []
                    problems.append(f'cannot read back: {error}')
                records[store.describe()] = next(
                    (record for record in found if record.key == expected.key), None,
                )
            rows.append(StoredEvent(delivery, records, problem='; '.join(problems) or None))
    finally:
        await close_all()
    return rows
