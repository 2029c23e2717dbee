"""Reads through the EventStore interface, run against every registered backend (see
tests/support/backends.py): pages newest first, filters, counts, and never another
installation's events. A new backend passes these unchanged."""
from datetime import datetime, timedelta, timezone
from typing import Any, List

import pytest

from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.base import EventFilter, EventStore
from connect_mongodb_example.storage.registry import stores_for
from tests.support.backends import backend_config, backend_targets
from tests.support.records import purchase_record, summary

MINE = 'EIN-1111-1111-1111'
THEIRS = 'EIN-2222-2222-2222'
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)


@pytest.fixture(params=backend_targets())
async def store(request) -> EventStore:
    async with backend_config(request.param, request) as config:
        yield stores_for(load_settings(config))[0]


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
    return sorted(sorted(mine, key=lambda r: r.key), key=lambda r: r.last_received_at,
                  reverse=True)


def keys(records) -> List[str]:
    return [record.key for record in records]


async def test_a_page_is_the_installations_events_newest_first(store, stored):
    page = await store.list_events(EventFilter(MINE), limit=50)
    assert keys(page) == keys(stored)
    assert [r.request_id for r in page] == ['PR-0001', 'PR-0002', 'PR-0003', 'PR-0002',
                                            'PR-0001']
    assert {r.installation_id for r in page} == {MINE}
    assert await store.count_events(EventFilter(MINE)) == 5


async def test_pages_carry_every_field_but_the_request_document(store, stored):
    [first] = await store.list_events(EventFilter(MINE), limit=1)
    assert summary(first) == summary(stored[0])
    assert first.received_at == stored[0].received_at
    assert first.last_received_at == stored[0].last_received_at
    assert first.request == {}


async def test_limit_and_offset_walk_the_same_order(store, stored):
    where = EventFilter(MINE)
    pages = [await store.list_events(where, limit=2, offset=offset) for offset in (0, 2, 4, 6)]
    assert [keys(page) for page in pages] == [
        keys(stored[:2]), keys(stored[2:4]), keys(stored[4:]), []]


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


async def test_a_redelivery_moves_its_event_up_and_counts_nothing_new(store, stored,
                                                                       purchase_request):
    oldest = stored[-1]
    await save(store, purchase_request, MINE, oldest.request_id, oldest.status, 60,
               updated=oldest.updated)
    page = await store.list_events(EventFilter(MINE), limit=50)
    assert page[0].key == oldest.key
    assert page[0].delivery_count == 2
    assert page[0].received_at == oldest.received_at
    assert page[0].last_received_at == T0 + timedelta(seconds=60)
    assert await store.count_events(EventFilter(MINE)) == 5
    assert await store.count_events(EventFilter(MINE, status=oldest.status)) == 3


async def test_the_timeline_of_a_request_is_one_installations(store, stored):
    timeline = await store.find('PR-0001', installation_id=MINE)
    assert [(r.status, r.installation_id) for r in timeline] == [
        ('pending', MINE), ('approved', MINE)]


def test_a_read_without_an_installation_cannot_be_built():
    with pytest.raises(ValueError, match='installation'):
        EventFilter('')
    with pytest.raises(ValueError, match='installation'):
        EventFilter(None)  # type: ignore[arg-type]
