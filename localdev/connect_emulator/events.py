"""Events to deliver, read from a folder of JSON files (one event per file).

A file holds either a purchase request as the Connect API returns it (an event of a
single-account extension), or a wrapper that adds the installation the event belongs to
and how many times Connect delivers it:

    {"installation": {"id": "EIN-...", "owner": {"id": "VA-...", "name": "..."}},
     "deliveries": 2,
     "request": {"id": "PR-...", "status": "pending", ...}}

Files are delivered in the order of their names.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

WRAPPER_KEYS = frozenset({'request', 'installation', 'deliveries'})
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
        unknown = sorted(set(document) - WRAPPER_KEYS)
        if unknown:
            raise EventFileError(
                source, f'unknown key(s) {", ".join(unknown)}; a wrapper holds only '
                        f'{", ".join(sorted(WRAPPER_KEYS))}',
            )
        return cls(
            request=_checked_request(document['request'], source),
            installation=_checked_installation(document.get('installation'), source),
            deliveries=_checked_deliveries(document.get('deliveries', 1), source),
            source=source,
        )


def load_event(path: Union[str, Path]) -> Event:
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError) as error:
        raise EventFileError(str(path), f'cannot be read: {error}') from None
    except ValueError as error:
        raise EventFileError(str(path), f'is not valid JSON: {error}') from None
    return Event.from_document(document, source=str(path))


def load_events(directory: Union[str, Path]) -> List[Event]:
    """Every `*.json` event of a folder, in the order of the file names."""
    directory = Path(directory)
    if not directory.is_dir():
        raise EventFileError(str(directory), 'is not a folder of event files')
    paths = sorted(directory.glob('*.json'))
    if not paths:
        raise EventFileError(str(directory), 'holds no *.json event file')
    return [load_event(path) for path in paths]


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
