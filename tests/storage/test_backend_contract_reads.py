"""Reads through the EventStore interface, run against every registered backend (the `store`
fixture, tests/storage/conftest.py): pages newest first, cursors, filters, counts, and never
another installation's events. A new backend passes these unchanged."""
import asyncio
import random
from datetime import datetime, timedelta, timezone
from typing import Any, List, Optional

import pytest

from connect_mongodb_example.storage.base import EventFilter, EventStore, PageCursor, newest_first
from tests.support.records import purchase_record, summary

MINE = 'EIN-1111-1111-1111'
THEIRS = 'EIN-2222-2222-2222'
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)


async def save(store: EventStore, purchase_request, installation_id, request_id, status,
               seconds, updated=None) -> Any:
    record = purchase_record(
        purchase_request(request_id, status=status, updated=updated or f'u{seconds}'),
        installation={'id': installation_id, 'owner': {'id': 'VA-000-001'}} if installation_id
        else None,
        received_at=T0 + timedelta(seconds=seconds),
    )
    await store.save(record)
    return record


@pytest.fixture
async def stored(store, purchase_request) -> List[Any]:
    """Mine: 5 events of 3 requests; theirs: 2 events, one of a request I have too; one event
    with no installation at all. Returned newest first, as pages list them."""
    mine = [
        await save(store, purchase_request, MINE, 'PR-0001', 'pending', 1),
        await save(store, purchase_request, MINE, 'PR-0001', 'approved', 5),
        await save(store, purchase_request, MINE, 'PR-0002', 'pending', 3),
        await save(store, purchase_request, MINE, 'PR-0003', 'pending', 4),
        # Received in the same second as PR-0003's: the key orders them.
        await save(store, purchase_request, MINE, 'PR-0002', 'failed', 4),
    ]
    await save(store, purchase_request, THEIRS, 'PR-0001', 'pending', 9)
    await save(store, purchase_request, THEIRS, 'PR-0009', 'pending', 10)
    await save(store, purchase_request, None, 'PR-0010', 'pending', 11)
    return sorted(mine, key=newest_first, reverse=True)


def keys(records) -> List[str]:
    return [record.key for record in records]


async def test_a_page_is_the_installations_events_newest_first(store, stored):
    page = await store.list_events(EventFilter(MINE), limit=50)
    assert keys(page) == keys(stored)
    assert [r.request_id for r in page] == ['PR-0001', 'PR-0003', 'PR-0002', 'PR-0002',
                                            'PR-0001']
    assert {r.installation_id for r in page} == {MINE}
    assert await store.count_events(EventFilter(MINE)) == 5


async def test_pages_carry_every_field_but_the_request_document(store, stored):
    [first] = await store.list_events(EventFilter(MINE), limit=1)
    assert summary(first) == summary(stored[0])
    assert first.received_at == stored[0].received_at
    assert first.last_received_at == stored[0].last_received_at
    assert first.request == {}


async def test_a_full_page_carries_the_request_documents(store, stored):
    page = await store.list_events(EventFilter(MINE), limit=50, full=True)
    assert [record.request for record in page] == [record.request for record in stored]
    assert all(record.request.get('asset') for record in page)


async def test_limit_and_offset_walk_the_same_order(store, stored):
    where = EventFilter(MINE)
    pages = [await store.list_events(where, limit=2, offset=offset) for offset in (0, 2, 4, 6)]
    assert [keys(page) for page in pages] == [
        keys(stored[:2]), keys(stored[2:4]), keys(stored[4:]), []]


async def test_an_offset_keeps_the_filters_the_cursors_and_the_documents(store, stored):
    pending = [record for record in stored if record.status == 'pending']
    by_offset = await store.list_events(EventFilter(MINE, status='pending'), limit=1, offset=1)
    assert keys(by_offset) == keys(pending[1:2])
    after = await store.list_events(EventFilter(MINE), limit=2, offset=1,
                                    after=PageCursor.of(stored[0]))
    assert keys(after) == keys(stored[2:4])
    before = await store.list_events(EventFilter(MINE), limit=2, offset=1,
                                     before=PageCursor.of(stored[-1]))
    assert keys(before) == keys(stored[1:3])
    [full] = await store.list_events(EventFilter(MINE), limit=1, offset=4, full=True)
    assert (full.key, full.request) == (stored[4].key, stored[4].request)


async def test_cursors_walk_forward_and_back(store, stored):
    where = EventFilter(MINE)
    first = await store.list_events(where, limit=2)
    second = await store.list_events(where, limit=2, after=PageCursor.of(first[-1]))
    third = await store.list_events(where, limit=2, after=PageCursor.of(second[-1]))
    assert [keys(first), keys(second), keys(third)] == [
        keys(stored[:2]), keys(stored[2:4]), keys(stored[4:])]
    assert await store.list_events(where, limit=2, after=PageCursor.of(third[-1])) == []
    # Back from the third page: the two nearest newer events, still newest first.
    back = await store.list_events(where, limit=2, before=PageCursor.of(third[0]))
    assert keys(back) == keys(second)
    assert keys(await store.list_events(where, limit=5, before=PageCursor.of(second[0]))) == (
        keys(first))
    assert await store.list_events(where, limit=2, before=PageCursor.of(first[0])) == []
    # The two events received in the same second are told apart by their keys.
    tied = [record for record in stored if record.received_at == T0 + timedelta(seconds=4)]
    after_tie = await store.list_events(where, limit=1, after=PageCursor.of(tied[0]))
    assert keys(after_tie) == [tied[1].key]


async def test_a_cursor_with_a_filter_stays_in_the_filter(store, stored):
    where = EventFilter(MINE, status='pending')
    first = await store.list_events(where, limit=1)
    rest = await store.list_events(where, limit=50, after=PageCursor.of(first[0]))
    assert [r.request_id for r in first + rest] == ['PR-0003', 'PR-0002', 'PR-0001']
    assert {r.status for r in rest} == {'pending'}


async def test_another_installations_cursor_reads_nothing_of_theirs(store, stored):
    theirs = await store.list_events(EventFilter(THEIRS), limit=50)
    newest = PageCursor(T0 + timedelta(days=1), 'zzz')
    page = await store.list_events(EventFilter(MINE), limit=50, after=newest)
    assert keys(page) == keys(stored)
    assert not set(keys(page)) & set(keys(theirs))


@pytest.mark.parametrize(('where', 'expected'), [
    ({'status': 'pending'}, ['PR-0003', 'PR-0002', 'PR-0001']),
    ({'request_id': 'PR-0002'}, ['PR-0002', 'PR-0002']),
    ({'request_id': 'PR-0001', 'status': 'approved'}, ['PR-0001']),
    ({'status': 'revoked'}, []),
    ({'request_id': 'PR-0009'}, []),  # theirs only
])
async def test_filters_narrow_the_page_and_the_count(store, stored, where, expected):
    query = EventFilter(MINE, **where)
    page = await store.list_events(query, limit=50)
    assert [r.request_id for r in page] == expected
    assert all(r.status == where.get('status', r.status) for r in page)
    assert await store.count_events(query) == len(expected)


async def test_another_installation_sees_only_its_own(store, stored):
    page = await store.list_events(EventFilter(THEIRS), limit=50)
    assert [(r.installation_id, r.request_id) for r in page] == [
        (THEIRS, 'PR-0009'), (THEIRS, 'PR-0001')]
    assert await store.count_events(EventFilter(THEIRS)) == 2
    assert await store.count_events(EventFilter('EIN-NOBODY')) == 0


async def test_a_redelivery_keeps_its_place_and_counts_nothing_new(store, stored,
                                                                    purchase_request):
    oldest = stored[-1]
    await save(store, purchase_request, MINE, oldest.request_id, oldest.status, 60,
               updated=oldest.updated)
    page = await store.list_events(EventFilter(MINE), limit=50)
    assert keys(page) == keys(stored)
    assert page[-1].delivery_count == 2
    assert page[-1].received_at == oldest.received_at
    assert page[-1].last_received_at == T0 + timedelta(seconds=60)
    assert await store.count_events(EventFilter(MINE)) == 5
    assert await store.count_events(EventFilter(MINE, status=oldest.status)) == 3


async def test_text_a_backend_cannot_hold_matches_nothing(store, stored):
    """A caller's text reaches the filters as it is: a NUL, a lone surrogate or a very long
    id matches no event, and raises nothing the web application would answer 500 to."""
    for odd in ('\x00', 'PR-\x00', '\ud800', 'x' * 10_000, "PR-0001' OR '1'='1", '%', '.*'):
        query = EventFilter(MINE, request_id=odd)
        assert await store.list_events(query, limit=5) == []
        assert await store.count_events(query) == 0
        assert await store.find(odd, installation_id=MINE) == []


async def test_the_timeline_of_a_request_is_one_installations(store, stored):
    timeline = await store.find('PR-0001', installation_id=MINE)
    assert [(r.status, r.installation_id) for r in timeline] == [
        ('pending', MINE), ('approved', MINE)]


async def test_cursor_pages_visit_each_event_once_while_events_are_written(
    store, purchase_request,
):
    """New events (newer than every other) and redeliveries of old ones arrive while the
    pages are read: each event stored before the walk is visited exactly once."""
    before = [await save(store, purchase_request, MINE, f'PR-{n:04d}', 'pending', n)
              for n in range(1, 41)]
    where = EventFilter(MINE)
    rng = random.Random(7)
    visited: List[str] = []
    after: Optional[PageCursor] = None

    async def write(step: int) -> None:
        await save(store, purchase_request, MINE, f'PR-9{step:03d}', 'pending', 1000 + step)
        old = rng.choice(before)
        await save(store, purchase_request, MINE, old.request_id, 'pending', 2000 + step,
                   updated=old.updated)

    for step in range(100):
        page, _ = await asyncio.gather(store.list_events(where, limit=3, after=after),
                                       write(step))
        visited.extend(keys(page))
        if not page:
            break
        after = PageCursor.of(page[-1])
    old_keys = set(keys(before))
    assert sorted(key for key in visited if key in old_keys) == sorted(old_keys)
    assert len(visited) == len(set(visited))


def test_a_read_without_an_installation_cannot_be_built():
    with pytest.raises(ValueError, match='installation'):
        EventFilter('')
    with pytest.raises(ValueError, match='installation'):
        EventFilter(None)  # type: ignore[arg-type]
