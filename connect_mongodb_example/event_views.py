"""What the web application shows of stored events: the JSON of a page item and of a
timeline entry, and the Content-Range of a page. The request documents are never shown."""
from datetime import datetime, timezone
from typing import Any, Dict

from connect_mongodb_example.event_record import EventRecord

#: The fields of a page item, in order (installation_id is left out: it is always the caller's).
LISTED_FIELDS = (
    'key', 'request_id', 'status', 'updated', 'event_type', 'asset_id', 'product_id',
    'account_id', 'delivery_count', 'received_at', 'last_received_at',
)
#: The fields of a timeline entry: what changed, and when and how often it was delivered.
TIMELINE_FIELDS = (
    'status', 'updated', 'delivery_count', 'received_at', 'last_received_at', 'event_type',
)


def listed_event(record: EventRecord) -> Dict[str, Any]:
    return _fields(record, LISTED_FIELDS)


def timeline_entry(record: EventRecord) -> Dict[str, Any]:
    return _fields(record, TIMELINE_FIELDS)


def content_range(offset: int, shown: int, total: int) -> str:
    """`items first-last/total`, what connect-ui-toolkit's FastAPI table adapter reads (it
    expects numbers on both sides of the dash, so an empty page is `items offset-offset/total`)."""
    last = offset + shown - 1 if shown else offset
    return f'items {offset}-{last}/{total}'


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace('+00:00', 'Z')


def _fields(record: EventRecord, names: tuple) -> Dict[str, Any]:
    shown = {}
    for name in names:
        value = getattr(record, name)
        shown[name] = iso_utc(value) if isinstance(value, datetime) else value
    return shown
