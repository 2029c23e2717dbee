"""One demo run: its deliveries, what each turn deleted, and the reading back of it all.

Every item goes through the emulation (`ConnectEmulator.deliver`); an installation status
change or a job run is also read back just before and after it (`demo_lifecycle.Turn`),
so that the table can say what it deleted and whether the settings called for it. The
folder watch of --keep-running and the local portal's buttons deliver through here too,
one item at a time.
"""
import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence, Tuple, Union

from connect_mongodb_example.errors import InvalidRequest
from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.settings import Settings, load_settings
from connect_mongodb_example.storage.base import EventStore
from connect_mongodb_example.storage.registry import close_all
from localdev.connect_emulator import (
    ConnectEmulator,
    Delivery,
    Event,
    InstallationChange,
    Item,
    ScheduleRun,
)
from localdev.connect_emulator.events import in_turns
from localdev.connect_emulator.protocol import INSTALLATION_STATUS_EVENT
from localdev.demo_lifecycle import (
    Snapshot,
    Turn,
    due_deletions,
    installation_states,
    known_records,
    turn_label,
)
from localdev.readback import (
    NOT_SENT,
    READ_ERRORS,
    SEEDED,
    Deletion,
    InstallationRow,
    StoredEvent,
    count_by_installation,
    expected_record,
    find_records,
    read_events,
    read_installations,
    selected_stores,
)


@dataclass(frozen=True)
class JobRow:
    """A run of a schedulable method and what it deleted (`turn`; None: not run)."""

    delivery: Delivery
    turn: Optional[Turn]

    @property
    def expected(self) -> str:
        return NOT_SENT if self.delivery.not_sent else 'done'

    @property
    def failed(self) -> bool:
        """It ran and failed, could not be read back, or left events it had to delete."""
        if self.delivery.not_sent:
            return False
        if any(result.result != 'success' for result in self.delivery.results):
            return True
        turn = self.turn
        return turn is None or bool(turn.problems) or any(turn.left(name) for name in turn.after)


Row = Union[StoredEvent, InstallationRow, JobRow]


@dataclass
class Readback:
    """The rows of the table, in delivery order (the seeded history first), and how many
    events each backend keeps of each installation now."""

    rows: List[Row]
    settings: Settings
    counts: Dict[str, Dict[str, Optional[int]]] = field(default_factory=dict)
    #: Every row of the run (else those of some deliveries only).
    full: bool = True


class DemoSession:
    def __init__(
        self, emulator: ConnectEmulator, seeded: Sequence[Event] = (),
        seeding_problems: Optional[Dict[str, str]] = None,
    ):
        self.emulator = emulator
        self.seeded = list(seeded)
        self.seeding_problems = dict(seeding_problems or {})
        self.deliveries: List[Delivery] = []
        #: id(delivery) -> the turn of an installation status change or a job run.
        self.turns: Dict[int, Turn] = {}
        self._lock = asyncio.Lock()

    async def deliver(self, items: Sequence[Item]) -> List[Delivery]:
        """Deliver `items` in their turns (see `events.in_turns`); their deliveries."""
        delivered: List[Delivery] = []
        async with self._lock:
            for turn in in_turns(items):
                if isinstance(turn[0], Event):
                    deliveries = await self.emulator.deliver_all(turn)
                else:
                    deliveries = [await self._deliver_turn(turn[0])]
                self.deliveries.extend(deliveries)
                delivered.extend(deliveries)
        return delivered

    async def _deliver_turn(self, item: Union[InstallationChange, ScheduleRun]) -> Delivery:
        variables = self.emulator.effective_variables()
        known = self._known_records()
        only = item.installation_id if isinstance(item, ScheduleRun) else None
        before, problems = await _snapshot(selected_stores(variables), known)
        # A job for an installation no store has a record of (installed before the
        # extension listened, or mistyped) does nothing: nothing is due.
        unrecorded = only is not None and not await _recorded(selected_stores(variables), only)
        started = datetime.now(timezone.utc)
        delivery = await self.emulator.deliver(item)
        ended = datetime.now(timezone.utc)
        after, after_problems = await _snapshot(selected_stores(variables), known)
        settings = load_settings(variables)
        states = installation_states([*self.deliveries, delivery])
        records = [] if unrecorded else known_records(before)
        self.turns[id(delivery)] = Turn(
            delivery, turn_label(delivery), before, after,
            may=due_deletions(records, states, settings, now=ended, only_installation=only),
            must=(due_deletions(records, states, settings, now=started, only_installation=only)
                  if isinstance(item, ScheduleRun) and delivery.results else {}),
            problems={**problems, **after_problems},
        )
        return delivery

    def _known_records(self) -> List[EventRecord]:
        """The records the extension makes of the events so far, the seeded history's first
        (received times are read back, not taken from these)."""
        events = [*self.seeded, *(delivery.event for delivery in self.deliveries
                                  if isinstance(delivery.event, Event) and not delivery.not_sent)]
        records: Dict[str, EventRecord] = {}
        for event in events:
            if event.status not in PURCHASE_REQUEST.statuses:
                continue
            try:
                record = expected_record(event)
            except InvalidRequest:
                continue
            records.setdefault(record.key, record)
        return list(records.values())

    async def read_back(self, deliveries: Optional[List[Delivery]] = None) -> Readback:
        """The rows of `deliveries` (by default the seeded history and every delivery),
        read from every selected backend, with the counts per installation."""
        variables = self.emulator.effective_variables()
        stores = selected_stores(variables)
        full = deliveries is None
        try:
            rows: List[Row] = []
            if full:
                rows.extend(await self._seeded_rows(stores))
            rows.extend(await self._rows(stores, self.deliveries if full else deliveries))
            counts = await count_by_installation(stores, self._installation_ids())
        finally:
            await close_all()
        return Readback(rows, load_settings(variables), counts, full)

    async def _seeded_rows(self, stores: Sequence[EventStore]) -> List[StoredEvent]:
        rows = await read_events(stores, [Delivery(event, []) for event in self.seeded],
                                 self._deletions(), expected=SEEDED)
        problem = '; '.join(self.seeding_problems.values()) or None
        return [replace(row, problem=row.problem or problem) for row in rows]

    async def _rows(self, stores: Sequence[EventStore], deliveries: List[Delivery]) -> List[Row]:
        deletions = self._deletions()
        rows: List[Row] = []
        for delivery in deliveries:
            if isinstance(delivery.event, InstallationChange):
                rows.extend(await read_installations(
                    stores, [delivery], self.emulator.subscriptions(),
                    INSTALLATION_STATUS_EVENT))
            elif isinstance(delivery.event, ScheduleRun):
                rows.append(JobRow(delivery, self.turns.get(id(delivery))))
            else:
                rows.extend(await read_events(stores, [delivery], deletions))
        return rows

    def _deletions(self) -> Dict[Tuple[str, str], Deletion]:
        """(backend, key): how each event some turn deleted was deleted."""
        deletions: Dict[Tuple[str, str], Deletion] = {}
        for turn in self.turns.values():
            deletions.update(turn.deletions())
        return deletions

    def _installation_ids(self) -> List[str]:
        items = [*self.seeded, *(delivery.event for delivery in self.deliveries)]
        return list(dict.fromkeys(item.installation_id for item in items
                                  if not isinstance(item, ScheduleRun) and item.installation_id))


async def _snapshot(
    stores: Sequence[EventStore], records: List[EventRecord],
) -> Tuple[Snapshot, Dict[str, str]]:
    """What each store holds of `records` now, and the stores that could not be read."""
    try:
        return await find_records(stores, records)
    finally:
        await close_all()


async def _recorded(stores: Sequence[EventStore], installation_id: str) -> bool:
    """Whether any store keeps a record of the installation (one that cannot be read may)."""
    try:
        for store in stores:
            try:
                if await store.get_installation(installation_id) is not None:
                    return True
            except READ_ERRORS:
                return True
        return False
    finally:
        await close_all()
