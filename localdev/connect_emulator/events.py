"""What the emulation delivers, read from a folder of JSON files (one per file).

A file holds one of:

- a purchase request as the Connect API returns it (an event of a single-account
  extension), or a wrapper that adds the installation the event belongs to and how many
  times Connect delivers it:

      {"installation": {"id": "EIN-...", "owner": {"id": "VA-...", "name": "..."}},
       "deliveries": 2,
       "request": {"id": "PR-...", "status": "pending", ...}}

- an installation status change: the installation is installed or uninstalled, and the
  extension gets an `installation_status_change` event about it:

      {"installation_status": "uninstalled",
       "installation": {"id": "EIN-...", "owner": {"id": "VA-...", "name": "..."}}}

- a run of one of the extension's schedulable methods (`@schedulable`), as when its
  schedule triggers; `method` is needed only when the extension declares several, and
  `parameter` is the schedule's parameter (the method reads it from the schedule object):

      {"schedule": {"method": "run_data_lifecycle", "parameter": {"installation_id": "EIN-..."}}}

Files are delivered in the order of their names.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

WRAPPER_KEYS = frozenset({'request', 'installation', 'deliveries'})
STATUS_CHANGE_KEYS = frozenset({'installation_status', 'installation', 'deliveries'})
SCHEDULE_KEYS = frozenset({'method', 'parameter'})
#: The statuses Connect reports an installation in (`installation_status_change`).
INSTALLATION_STATUSES = ('installed', 'uninstalled')
MAX_DELIVERIES = 10


class EventFileError(ValueError):
    """An event file that cannot be used; the message names the file and the problem."""

    def __init__(self, source: str, problem: str):
        super().__init__(f'{source}: {problem}')
        self.source = source
        self.problem = problem


@dataclass(frozen=True)
class Event:
    """One purchase-request event: the request as it is when the event fires."""

    request: Dict[str, Any] = field(repr=False)
    installation: Optional[Dict[str, Any]] = field(default=None, repr=False)
    deliveries: int = 1
    source: str = '(inline)'

    @property
    def request_id(self) -> str:
        return self.request['id']

    @property
    def subject(self) -> str:
        """What the event is about, as the demo's table names it."""
        return self.request_id

    @property
    def status(self) -> str:
        return self.request['status']

    @property
    def installation_id(self) -> Optional[str]:
        return self.installation['id'] if self.installation else None

    @property
    def account_id(self) -> Optional[str]:
        return self.installation['owner']['id'] if self.installation else None

    @classmethod
    def from_document(cls, document: Any, source: str = '(inline)') -> 'Event':
        """Check a decoded event file; raise `EventFileError` naming what is wrong."""
        if not isinstance(document, dict):
            raise EventFileError(source, 'must hold a JSON object')
        if 'request' not in document:
            return cls(request=_checked_request(document, source), source=source)
        _refuse_unknown_keys(document, WRAPPER_KEYS, 'a wrapper', source)
        return cls(
            request=_checked_request(document['request'], source),
            installation=_checked_installation(document.get('installation'), source),
            deliveries=_checked_deliveries(document.get('deliveries', 1), source),
            source=source,
        )


@dataclass(frozen=True)
class InstallationChange:
    """An installation reaches `status` (installed or uninstalled): Connect records it on the
    installation object and sends the extension an `installation_status_change` event.

    `installation` names it; the emulation's own object is used if it knows the installation
    already (from an earlier event), this one otherwise."""

    installation: Dict[str, Any] = field(repr=False)
    status: str
    deliveries: int = 1
    source: str = '(inline)'

    @property
    def installation_id(self) -> str:
        return self.installation['id']

    @property
    def subject(self) -> str:
        return self.installation_id

    @property
    def account_id(self) -> Optional[str]:
        return self.installation.get('owner', {}).get('id')

    @classmethod
    def from_document(cls, document: Any, source: str = '(inline)') -> 'InstallationChange':
        if not isinstance(document, dict):
            raise EventFileError(source, 'must hold a JSON object')
        _refuse_unknown_keys(document, STATUS_CHANGE_KEYS, 'an installation status change',
                             source)
        status = document.get('installation_status')
        if status not in INSTALLATION_STATUSES:
            raise EventFileError(
                source, f'"installation_status" must be one of '
                        f'{", ".join(INSTALLATION_STATUSES)}, got {status!r}',
            )
        installation = _checked_installation(document.get('installation'), source)
        if installation is None:
            raise EventFileError(source, 'an installation status change needs the '
                                         '"installation" it is about')
        return cls(
            installation=installation, status=status,
            deliveries=_checked_deliveries(document.get('deliveries', 1), source),
            source=source,
        )


@dataclass(frozen=True)
class ScheduleRun:
    """One run of a schedulable method of the extension, as when its schedule triggers.

    `method` None: the one the extension declares (a run fails to start if it declares
    several). `parameter` is the schedule's parameter, as the method finds it in the
    schedule object."""

    method: Optional[str] = None
    parameter: Dict[str, Any] = field(default_factory=dict)
    source: str = '(inline)'
    deliveries: int = field(default=1, init=False)

    @property
    def subject(self) -> str:
        return self.method or 'schedule'

    @property
    def installation_id(self) -> Optional[str]:
        """The installation the parameter limits the run to, if any."""
        value = self.parameter.get('installation_id')
        return value if isinstance(value, str) else None

    @classmethod
    def from_document(cls, document: Any, source: str = '(inline)') -> 'ScheduleRun':
        if not isinstance(document, dict) or set(document) != {'schedule'}:
            raise EventFileError(source, 'a schedule run holds only "schedule": {...}')
        schedule = document['schedule']
        if not isinstance(schedule, dict):
            raise EventFileError(source, '"schedule" must be a JSON object')
        _refuse_unknown_keys(schedule, SCHEDULE_KEYS, '"schedule"', source)
        method = schedule.get('method')
        if method is not None and (not isinstance(method, str) or not method.isidentifier()):
            raise EventFileError(source, f'"method" must name a method, got {method!r}')
        parameter = schedule.get('parameter', {})
        if not isinstance(parameter, dict):
            raise EventFileError(source, '"parameter" must be a JSON object')
        return cls(method=method, parameter=parameter, source=source)


#: Anything an event file can hold.
Item = Union[Event, InstallationChange, ScheduleRun]


def item_from_document(document: Any, source: str = '(inline)') -> Item:
    """The kind of item a decoded file holds, checked (see the module's docstring)."""
    if isinstance(document, dict) and 'schedule' in document:
        return ScheduleRun.from_document(document, source)
    if isinstance(document, dict) and 'installation_status' in document:
        return InstallationChange.from_document(document, source)
    return Event.from_document(document, source)


def load_event(path: Union[str, Path]) -> Item:
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError) as error:
        raise EventFileError(str(path), f'cannot be read: {error}') from None
    except ValueError as error:
        raise EventFileError(str(path), f'is not valid JSON: {error}') from None
    return item_from_document(document, source=str(path))


def load_items(directory: Union[str, Path]) -> List[Item]:
    """Every `*.json` file of a folder, of any kind, in the order of the file names."""
    directory = Path(directory)
    if not directory.is_dir():
        raise EventFileError(str(directory), 'is not a folder of event files')
    paths = sorted(directory.glob('*.json'))
    if not paths:
        raise EventFileError(str(directory), 'holds no *.json event file')
    return [load_event(path) for path in paths]


def load_events(directory: Union[str, Path]) -> List[Event]:
    """The purchase-request events of a folder, in the order of the file names; its
    installation status changes and schedule runs are left out (`load_items` has them)."""
    return [item for item in load_items(directory) if isinstance(item, Event)]


def load_requests(directory: Union[str, Path]) -> List[Event]:
    """Every purchase-request event file of a folder (nothing else allowed), in name order;
    none if the folder does not exist."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    events = []
    for path in sorted(directory.glob('*.json')):
        item = load_event(path)
        if not isinstance(item, Event):
            raise EventFileError(str(path), 'only purchase-request events belong here')
        events.append(item)
    return events


def in_turns(items: Iterable[Item]) -> List[List[Item]]:
    """`items` in the turns they are delivered in: each run of purchase-request events is
    one turn (its events are delivered together), and each installation status change or
    schedule run a turn of its own, once everything before it has its results, so that it
    sees what they did and what follows sees what it did."""
    turns: List[List[Item]] = []
    for item in items:
        if isinstance(item, Event) and turns and isinstance(turns[-1][-1], Event):
            turns[-1].append(item)
        else:
            turns.append([item])
    return turns


def _refuse_unknown_keys(
    document: Mapping[str, Any], allowed: frozenset, what: str, source: str,
) -> None:
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise EventFileError(
            source, f'unknown key(s) {", ".join(unknown)}; {what} holds only '
                    f'{", ".join(sorted(allowed))}',
        )


def _checked_request(request: Any, source: str) -> Dict[str, Any]:
    if not isinstance(request, dict):
        raise EventFileError(source, '"request" must be a JSON object')
    for name in ('id', 'status'):
        if not isinstance(request.get(name), str) or not request[name].strip():
            raise EventFileError(source, f'the request needs a non-empty string {name!r}')
    return request


def _checked_installation(installation: Any, source: str) -> Optional[Dict[str, Any]]:
    if installation is None:
        return None
    if not isinstance(installation, dict):
        raise EventFileError(source, '"installation" must be a JSON object')
    if not isinstance(installation.get('id'), str) or not installation['id']:
        raise EventFileError(source, 'the installation needs a string "id" (EIN-...)')
    owner = installation.get('owner')
    if not isinstance(owner, Mapping) or not isinstance(owner.get('id'), str):
        raise EventFileError(
            source, 'the installation needs an "owner" with the account "id" (VA-... or PA-...)',
        )
    return installation


def _checked_deliveries(deliveries: Any, source: str) -> int:
    if isinstance(deliveries, bool) or not isinstance(deliveries, int):
        raise EventFileError(source, f'"deliveries" must be a whole number, got {deliveries!r}')
    if not 1 <= deliveries <= MAX_DELIVERIES:
        raise EventFileError(source, f'"deliveries" must be between 1 and {MAX_DELIVERIES}')
    return deliveries
