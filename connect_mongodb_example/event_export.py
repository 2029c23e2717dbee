"""An installation's stored events as a download, CSV or NDJSON, in parts of bounded size.

Why parts: the runner (43.1) does not stream an answer to Connect. Its web worker calls the
application through httpx's ASGI transport, which collects the whole body, then sends it
base64-encoded in one websocket message (a third larger); the runner itself accepts no
message over 2 MiB (`max_size=2**21`), and Connect's gateway has a bound of its own. So one
answer holds at most `PART_EVENTS` events and stops before the event that would take it
past `PART_BYTES` (a part always has at least one event, so a single event over that goes
alone). The answer's Link header (rel="next") continues the export after its last event;
parts put end to end (only the first has the CSV header row) are the whole export.

A part is read in pages of `READ_EVENTS`, each read within the storage timeout, and is
whole before its answer starts: a storage error is then the read's 503, never a download
cut short. The order is the pages' (newest first by first receipt, then key), which no
write changes, so parts continue each other exactly while events keep arriving; an event
first received after the export began comes before its first part, and is not in it.
"""
import csv
import io
import json
from dataclasses import dataclass
from typing import Awaitable, Callable, Dict, List, Optional

from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.event_views import EXPORTED_FIELDS, exported_event
from connect_mongodb_example.storage.base import PageCursor

#: Most events in one part; a caller may ask for fewer (`limit`).
PART_EVENTS = 1000
#: A part stops before the event that would take it past this many bytes: base64 makes it
#: at most ~1.4 MiB in the runner's message, under the 2 MiB the runner itself accepts.
PART_BYTES = 1024 * 1024
#: Events per storage read (each within the storage timeout).
READ_EVENTS = 100

#: (after this cursor, at most this many) -> the next records, newest first, with documents.
Reader = Callable[[Optional[PageCursor], int], Awaitable[List[EventRecord]]]


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(',', ':'))


def _csv_line(values: List[object]) -> str:
    line = io.StringIO()
    csv.writer(line).writerow(values)
    return line.getvalue()


def _csv_row(record: EventRecord) -> str:
    """One column per stored field; the request as JSON text, an absent value empty."""
    event = exported_event(record)
    return _csv_line(['' if event[name] is None
                      else _json(event[name]) if isinstance(event[name], dict)
                      else event[name] for name in EXPORTED_FIELDS])


def _ndjson_row(record: EventRecord) -> str:
    """One stored event per line, as a JSON object."""
    return _json(exported_event(record)) + '\n'


@dataclass(frozen=True)
class ExportFormat:
    name: str
    media_type: str
    #: What the first part starts with (the CSV header row).
    header: str
    row: Callable[[EventRecord], str]


FORMATS: Dict[str, ExportFormat] = {
    export.name: export for export in (
        ExportFormat('csv', 'text/csv; charset=utf-8', _csv_line(list(EXPORTED_FIELDS)),
                     _csv_row),
        ExportFormat('ndjson', 'application/x-ndjson', '', _ndjson_row),
    )
}


@dataclass(frozen=True)
class ExportPart:
    body: bytes
    events: int
    #: Where the next part starts (after this part's last event); None: this is the last.
    next_after: Optional[PageCursor]


async def read_part(
    read: Reader, export: ExportFormat, after: Optional[PageCursor], *,
    max_events: int = PART_EVENTS, max_bytes: int = PART_BYTES,
) -> ExportPart:
    """The part that starts after `after` (at the newest event when None)."""
    chunks: List[bytes] = [export.header.encode('utf-8')] if after is None else []
    header = size = len(chunks[0]) if chunks else 0
    events = 0
    cursor = after
    while True:
        # One more than the part can take: it tells whether another part follows.
        wanted = min(READ_EVENTS, max_events - events + 1)
        if events:
            # Large documents: no more than the rest of the part is likely to take.
            average = (size - header) / events
            wanted = min(wanted, int((max_bytes - size) / average) + 2)
        page = await read(cursor, wanted)
        for record in page:
            row = export.row(record).encode('utf-8')
            if events and (events == max_events or size + len(row) > max_bytes):
                return ExportPart(b''.join(chunks), events, cursor)
            chunks.append(row)
            size += len(row)
            events += 1
            cursor = PageCursor.of(record)
        if len(page) < wanted:
            return ExportPart(b''.join(chunks), events, None)
