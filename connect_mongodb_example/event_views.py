"""What the web application shows of stored events, all derived from `EventRecord`'s
declarations: the JSON of a page item and of a timeline entry, the Events page's columns
(`/api/schema`), an exported event, and the Content-Range of a page."""
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Tuple

from connect_mongodb_example.event_record import STORED_FIELDS, EventRecord
from connect_mongodb_example.record_fields import COUNT, JSON, TIME, field_labels

#: The fields of a page item: every stored field but the documents (never shown on a page)
#: and installation_id (always the caller's), so that a field added to the record is listed.
LISTED_FIELDS = tuple(name for name, stored in STORED_FIELDS
                      if stored.kind != JSON and name != 'installation_id')
#: The Events page's table columns, in order; each one a listed field, headed by its label.
#: A field added to the record is listed by the API; naming it here shows it on the page.
PAGE_COLUMNS = (
    'request_id',
    'status',
    'updated',
    'asset_id',
    'product_id',
    'account_id',
    'delivery_count',
    'last_received_at',
)
#: The fields of a timeline entry: what changed, and every time and count of its deliveries.
TIMELINE_FIELDS = ('status', 'updated', 'event_type') + tuple(
    name for name, stored in STORED_FIELDS if stored.kind in (TIME, COUNT))
#: The fields of an exported event: everything stored, the request document included.
EXPORTED_FIELDS = tuple(name for name, _ in STORED_FIELDS)
LABELS = field_labels(EventRecord)
_KINDS = dict(STORED_FIELDS)

_unknown = sorted(set(PAGE_COLUMNS) - set(LISTED_FIELDS))
if _unknown:
    raise ValueError(f'PAGE_COLUMNS names fields that are not listed: {", ".join(_unknown)} '
                     f'(listed: {", ".join(LISTED_FIELDS)})')


def listed_event(record: EventRecord) -> Dict[str, Any]:
    return _fields(record, LISTED_FIELDS)


def timeline_entry(record: EventRecord) -> Dict[str, Any]:
    return _fields(record, TIMELINE_FIELDS)


def exported_event(record: EventRecord) -> Dict[str, Any]:
    """Every stored field, times in ISO 8601 UTC, the request as the object it is."""
    return _fields(record, EXPORTED_FIELDS)


def page_schema(statuses: Iterable[str], export_formats: Iterable[str]) -> Dict[str, Any]:
    """What the Events page builds itself from: the listed fields (name, label, kind), the
    columns it shows, the statuses it filters on and the formats it downloads."""
    return {
        'fields': [{'name': name, 'label': LABELS[name], 'kind': _KINDS[name].kind}
                   for name in LISTED_FIELDS],
        'columns': list(PAGE_COLUMNS),
        'statuses': list(statuses),
        'export_formats': list(export_formats),
    }


def content_range(offset: int, shown: int, total: int) -> str:
    """`items first-last/total`, what connect-ui-toolkit's FastAPI table adapter reads (it
    expects numbers on both sides of the dash, so an empty page is `items offset-offset/total`)."""
    last = offset + shown - 1 if shown else offset
    return f'items {offset}-{last}/{total}'


def link_header(links: List[Tuple[str, str]]) -> str:
    """An RFC 8288 Link header of (relation, URL) pairs."""
    return ', '.join(f'<{url}>; rel="{relation}"' for relation, url in links)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace('+00:00', 'Z')


def _fields(record: EventRecord, names: Tuple[str, ...]) -> Dict[str, Any]:
    shown = {}
    for name in names:
        value = getattr(record, name)
        shown[name] = iso_utc(value) if isinstance(value, datetime) else value
    return shown
