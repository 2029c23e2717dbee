"""The read benchmark's data set, row by row, and which events each page must show.

Row i (1-based) is the target installation's when i % 3 != 0, else installation i % OTHERS;
statuses cycle with i; it was received i seconds after FIRST_RECEIVED, so the newest events
have the highest i. The SQL loaders generate the same rows in SQL; the MongoDB loader from
these functions. Pages are checked against `expected_page`, so a wrong page (a cursor that
skips or repeats events) fails the benchmark instead of being timed.
"""
import itertools
import json
from datetime import datetime, timedelta, timezone
from typing import Iterator, List, Optional

from connect_mongodb_example.event_record import idempotency_key
from connect_mongodb_example.extension import PURCHASE_REQUEST
from localdev.bench.workloads import TEMPLATE_FILE

#: The installation whose pages are read, and the others beside it.
TARGET = 'EIN-0000-0000-0001'
OTHERS = 20
#: Of every 3 events loaded, 2 are the target installation's and 1 another's.
TARGET_SHARE = (2, 3)
STATUSES = PURCHASE_REQUEST.statuses
PRODUCT_ID = 'PRD-000-000-001'
# One event per second of received time, from this moment on (naive UTC, as SQL stores it).
FIRST_RECEIVED = '2026-01-01 00:00:00'
_FIRST = datetime(2026, 1, 1, tzinfo=timezone.utc)


def total_rows(target_events: int) -> int:
    """Rows to load so that the target installation gets exactly `target_events`."""
    share, every = TARGET_SHARE
    full, rest = divmod(target_events, share)
    return full * every + rest


def template_json() -> str:
    return json.dumps(json.loads(TEMPLATE_FILE.read_text(encoding='utf-8'))['request'],
                      separators=(',', ':'))


def installation_of(i: int) -> str:
    return f'EIN-0000-1000-{i % OTHERS:04d}' if i % TARGET_SHARE[1] == 0 else TARGET


def request_id_of(i: int) -> str:
    return f'PR-{i:012d}-001'


def status_of(i: int) -> str:
    return STATUSES[i % len(STATUSES)]


def received_of(i: int) -> datetime:
    return _FIRST + timedelta(seconds=i)


def updated_of(i: int) -> str:
    return received_of(i).strftime('%Y-%m-%dT%H:%M:%S+00:00')


def key_of(i: int) -> str:
    return idempotency_key(request_id_of(i), status_of(i), updated_of(i), installation_of(i))


def newest_first(target_events: int, status: Optional[str] = None) -> Iterator[int]:
    """The target's rows in page order (newest first), of one status or of all."""
    for i in range(total_rows(target_events), 0, -1):
        if installation_of(i) == TARGET and (status is None or status_of(i) == status):
            yield i


def matching(target_events: int, status: Optional[str]) -> int:
    if status is None:
        return target_events
    return sum(1 for _ in newest_first(target_events, status))


def expected_page(target_events: int, status: Optional[str], offset: int,
                  size: int) -> List[str]:
    """The request ids of the page of `size` events that starts `offset` events deep."""
    rows = itertools.islice(newest_first(target_events, status), offset, offset + size)
    return [request_id_of(i) for i in rows]


def newest_request(target_events: int) -> str:
    """The newest request of the target installation: its timeline is the one read."""
    return request_id_of(next(newest_first(target_events)))
