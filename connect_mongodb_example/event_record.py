"""The stored form of one event, and how it is derived from a Connect request."""
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional, Tuple

from connect_mongodb_example.errors import InvalidRequest
from connect_mongodb_example.record_fields import (
    counter,
    document,
    from_installation,
    from_request,
    moment,
    stored_fields,
    text,
)


@dataclass(frozen=True)
class EventType:
    """An event the extension subscribes to, and the statuses of the requests it handles."""

    name: str
    statuses: Tuple[str, ...]


@dataclass(frozen=True)
class EventRecord:
    """One delivery of an event, as every storage backend keeps it.

    `key` identifies the event across redeliveries: Connect may deliver the same task more
    than once, and a retry must land on the same record instead of adding one. It is
    `request id:status:updated`, prefixed with `installation id/` for an installation's event.

    Each field says how it is stored (see `record_fields`); the backends derive their
    columns and documents from these lines. A field may also say what people call it
    (`label`, the Events page's column heading); otherwise its name does.
    """

    key: str = text(512)
    request_id: str = text(128)
    status: str = text(32)
    updated: str = text(64)
    event_type: str = text(128)
    asset_id: Optional[str] = text(128, source=from_request('asset', 'id'))
    product_id: Optional[str] = text(128, source=from_request('asset', 'product', 'id'))
    installation_id: Optional[str] = text(128, source=from_installation('id'))
    account_id: Optional[str] = text(128, source=from_installation('owner', 'id'))
    received_at: datetime = moment(label='First received')
    # Maintained by the storage: a new record starts at its received time and at 1.
    last_received_at: Optional[datetime] = moment(latest=True, label='Last received')
    delivery_count: int = counter(label='Deliveries')
    request: Dict[str, Any] = document()
    #: `request` as compact JSON, encoded once when the record is built (empty when read
    #: back); not a stored field of its own.
    request_json: str = field(default='', repr=False, compare=False)

    def __post_init__(self) -> None:
        # A new record was last received when it was first received.
        if self.last_received_at is None:
            object.__setattr__(self, 'last_received_at', self.received_at)


#: (name, how it is stored) of every field the backends keep, in declaration order.
STORED_FIELDS = stored_fields(EventRecord)


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
    installation = installation or {}
    taken = {name: stored.source(request, installation)
             for name, stored in STORED_FIELDS if stored.source is not None}
    return EventRecord(
        key=idempotency_key(request_id, status, updated, installation.get('id')),
        request_id=request_id,
        status=status,
        updated=updated,
        event_type=event_type.name,
        received_at=received_at or utcnow(),
        # Decoding the text is the fastest deep copy, and one the caller cannot change.
        request=json.loads(request_json),
        request_json=request_json,
        **taken,
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
