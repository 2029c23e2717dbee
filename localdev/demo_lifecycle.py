"""The data lifecycle as the demo checks it: which stored events a turn of the run (an
installation status change, a run of the data lifecycle job) may delete and which it must,
by the settings as README documents them, and which it did, read back before and after.

- ON_UNINSTALL=purge: the events of an installation uninstalled PURGE_GRACE_DAYS ago or
  more (and not installed again since) are due for deletion;
- EVENTS_RETENTION_DAYS=N: events first received more than N days ago are due;
- a schedule whose parameter names an installation deletes only that installation's, and
  nothing if no store has a record of it (see `DemoSession`).

A job must delete every event due when it starts; any turn may delete events due when it
ends (the handler of an uninstall may purge at once when nothing is to wait); any other
deletion is one the settings do not call for. The extension decides nothing here: the demo
only compares what it did with what its settings promise.
"""
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Dict, Iterable, List, Mapping, Optional, Set, Tuple

from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.settings import Settings
from localdev.connect_emulator import Delivery, InstallationChange, ScheduleRun
from localdev.readback import Deletion

#: Why an event is due for deletion (`Deletion.why`).
PURGE = 'purge'
RETENTION = 'retention'
UNINSTALLED = 'uninstalled'
#: What a status change is called in a label: "the uninstall of EIN-...".
CHANGE_NAMES = {'installed': 'install', UNINSTALLED: 'uninstall'}

#: backend -> key -> the record it held (None: none).
Snapshot = Dict[str, Dict[str, Optional[EventRecord]]]


@dataclass(frozen=True)
class InstallationState:
    """The latest status change the extension was told of (it answered `success`)."""

    status: str
    at: datetime


def installation_states(deliveries: Iterable[Delivery]) -> Dict[str, InstallationState]:
    states: Dict[str, InstallationState] = {}
    for delivery in deliveries:
        change = delivery.event
        if not isinstance(change, InstallationChange) or delivery.served is None:
            continue
        if not any(result.result == 'success' for result in delivery.results):
            continue
        at = datetime.fromisoformat(delivery.served['events'][change.status]['at'])
        states[change.installation_id] = InstallationState(change.status, at)
    return states


def due_deletions(
    records: Iterable[EventRecord],
    states: Mapping[str, InstallationState],
    settings: Settings,
    *,
    now: datetime,
    only_installation: Optional[str] = None,
) -> Dict[str, str]:
    """key: why (PURGE, RETENTION) of each record due for deletion at `now`."""
    grace = timedelta(days=settings.purge_grace_days)
    cutoff = now - timedelta(days=settings.retention_days) if settings.retention_days else None
    due = {}
    for record in records:
        if only_installation is not None and record.installation_id != only_installation:
            continue
        state = states.get(record.installation_id or '')
        if (settings.on_uninstall == PURGE and state is not None
                and state.status == UNINSTALLED and state.at + grace <= now):
            due[record.key] = PURGE
        elif cutoff is not None and _utc(record.received_at) < cutoff:
            due[record.key] = RETENTION
    return due


def _utc(moment: datetime) -> datetime:
    # A backend that keeps no time zone keeps UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


@dataclass
class Turn:
    """A status change or a job run, and what it deleted of the events the demo knows.

    `may` (key: why) is what was due when it ended: deleting those is right, anything else
    not. `must` is what was due when a job started: a job leaving one of those behind did
    not do its work. Backends that could not be read are in `problems`."""

    delivery: Delivery
    label: str
    before: Snapshot
    after: Snapshot
    may: Dict[str, str]
    must: Dict[str, str] = field(default_factory=dict)
    problems: Dict[str, str] = field(default_factory=dict)

    @property
    def is_job(self) -> bool:
        return isinstance(self.delivery.event, ScheduleRun)

    def deleted(self, backend: str) -> List[EventRecord]:
        """The records the backend held before the turn and not after, in the known order."""
        if backend in self.problems:
            return []
        after = self.after.get(backend, {})
        return [record for key, record in self.before.get(backend, {}).items()
                if record is not None and key in after and after[key] is None]

    def left(self, backend: str) -> List[EventRecord]:
        """Records due when the job started that the backend still holds."""
        if backend in self.problems:
            return []
        return [record for key, record in self.after.get(backend, {}).items()
                if record is not None and key in self.must]

    def deletions(self) -> Dict[Tuple[str, str], Deletion]:
        """(backend, key): what this turn deleted, each with why it was due (or None)."""
        return {(backend, record.key): Deletion(self.label, self.may.get(record.key))
                for backend in self.before for record in self.deleted(backend)}

    def not_due(self, backend: str) -> List[EventRecord]:
        return [record for record in self.deleted(backend) if record.key not in self.may]


def turn_label(delivery: Delivery) -> str:
    """How a row names the turn that deleted its event."""
    item = delivery.event
    if isinstance(item, InstallationChange):
        return f'the {CHANGE_NAMES[item.status]} of {item.installation_id}'
    name = (delivery.served or {}).get('name') or item.subject
    return f'the {name} job'


def known_records(snapshot: Snapshot) -> List[EventRecord]:
    """Each record any backend held, once (the first backend's copy)."""
    seen: Set[str] = set()
    records = []
    for found in snapshot.values():
        for key, record in found.items():
            if record is not None and key not in seen:
                seen.add(key)
                records.append(record)
    return records
