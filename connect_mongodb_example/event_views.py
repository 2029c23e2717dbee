"""What the web application shows of stored events: the JSON of a page item and of a
timeline entry, and the Content-Range of a page. The request documents are never shown."""
from datetime import datetime, timezone
from typing import Any, Dict

from connect_mongodb_example.event_record import STORED_FIELDS, EventRecord
from connect_mongodb_example.record_fields import COUNT, JSON, TIME

#: The fields of a page item: every stored field but the documents (never shown) and
#: installation_id (always the caller's), so that a field added to the record is listed too.
LISTED_FIELDS = tuple(name for name, stored in STORED_FIELDS
                      if stored.kind != JSON and name != 'installation_id')
#: The fields of a timeline entry: what changed, and every time and count of its deliveries.
TIMELINE_FIELDS = ('status', 'updated', 'event_type') + tuple(
    name for name, stored in STORED_FIELDS if stored.kind in (TIME, COUNT))


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
