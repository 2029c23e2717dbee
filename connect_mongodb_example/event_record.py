"""The stored form of one event, and how it is derived from a Connect request."""
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional, Tuple

from connect_mongodb_example.errors import InvalidRequest


@dataclass(frozen=True)
class EventType:
    """An event the extension subscribes to, and the statuses of the requests it handles."""

    name: str
    statuses: Tuple[str, ...]


#: The fields every store keeps as they are, written with the first delivery and never changed.
FIRST_WRITE_FIELDS = (
    'key', 'request_id', 'status', 'updated', 'event_type', 'asset_id', 'product_id',
    'installation_id', 'account_id',
)


@dataclass(frozen=True)
class EventRecord:
    """One delivery of an event, as every storage backend keeps it.

    `key` identifies the event across redeliveries: Connect may deliver the same task more
    than once, and a retry must land on the same record instead of adding one. It is
    `request id:status:updated`, prefixed with `installation id/` for an installation's event.
    """

    key: str
    request_id: str
    status: str
    updated: str
    event_type: str
    asset_id: Optional[str]
    product_id: Optional[str]
    installation_id: Optional[str]
    account_id: Optional[str]
    received_at: datetime
    request: Dict[str, Any] = field(repr=False)
    # Both are maintained by the storage: a new record starts at 1 and at its received time.
    delivery_count: int = 1
    last_received_at: Optional[datetime] = None
    #: `request` as compact JSON, encoded once when the record is built (empty when read back).
    request_json: str = field(default='', repr=False, compare=False)

    def __post_init__(self) -> None:
        # A new record was last received when it was first received.
        if self.last_received_at is None:
            object.__setattr__(self, 'last_received_at', self.received_at)


def idempotency_key(
    request_id: str, status: str, updated: str, installation_id: Optional[str] = None,
) -> str:
    """Same event, same key. A request can reach several installations (the vendor's and
    the distributor's): each one's delivery is its own event, so the installation scopes it."""
    key = f'{request_id}:{status}:{updated}'
    return f'{installation_id}/{key}' if installation_id else key


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def build_record(
    request: object,
    event_type: EventType,
    *,
    installation: Optional[Mapping[str, Any]] = None,
    received_at: Optional[datetime] = None,
) -> EventRecord:
    """Validate a request and turn it into a record; the caller's dict is never modified."""
    if not isinstance(request, dict):
        raise InvalidRequest(f'the request must be a JSON object, got {type(request).__name__}')
    request_id = _required_text(request, 'id')
    status = _required_text(request, 'status')
    if status not in event_type.statuses:
        raise InvalidRequest(
            f'request {request_id} has status {status!r}, which this extension does not '
            f'handle (expected one of {", ".join(event_type.statuses)})',
        )
    request_json = _json_text(request, request_id)
    updated = _updated_at(request, request_id)
    asset = request.get('asset') if isinstance(request.get('asset'), dict) else {}
    product = asset.get('product') if isinstance(asset.get('product'), dict) else {}
    installation = installation or {}
    owner = installation.get('owner') if isinstance(installation.get('owner'), dict) else {}
    received_at = received_at or utcnow()
    return EventRecord(
        key=idempotency_key(request_id, status, updated, installation.get('id')),
        request_id=request_id,
        status=status,
        updated=updated,
        event_type=event_type.name,
        asset_id=asset.get('id'),
        product_id=product.get('id'),
        installation_id=installation.get('id'),
        account_id=owner.get('id'),
        received_at=received_at,
        # Decoding the text is the fastest deep copy, and one the caller cannot change.
        request=json.loads(request_json),
        request_json=request_json,
    )


def _required_text(request: Mapping[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value.strip():
        shown = request.get('id') if name != 'id' and isinstance(request.get('id'), str) else None
        where = f'request {shown}' if shown else 'the request'
        raise InvalidRequest(f'{where} has no {name!r} (a non-empty string is required)')
    return value.strip()


def _updated_at(request: Mapping[str, Any], request_id: str) -> str:
    """Connect sets `updated` on every change; older payloads only carry `events.updated.at`.

    Without it a request that returns to a status could not be told from a redelivery.
    """
    updated = request.get('updated')
    if isinstance(updated, str) and updated:
        return updated
    events = request.get('events')
    if isinstance(events, dict) and isinstance(events.get('updated'), dict):
        at = events['updated'].get('at')
        if isinstance(at, str) and at:
            return at
    raise InvalidRequest(
        f"request {request_id} has no 'updated' time (nor events.updated.at), which the "
        'idempotency key needs',
    )


def _json_text(request: Dict[str, Any], request_id: str) -> str:
    """The request as compact JSON; every backend must be able to store it as it is."""
    try:
        text = json.dumps(request, allow_nan=False, separators=(',', ':'), ensure_ascii=False)
        # "\ud800" decodes to a lone surrogate, which no store can encode.
        text.encode('utf-8')
        return text
    except (TypeError, ValueError) as error:  # UnicodeEncodeError is a ValueError
        raise InvalidRequest(f'request {request_id} is not valid JSON: {error}') from None
