"""What every registered backend must do when it stores events, run against each of them
(the `store` fixture, tests/storage/conftest.py). A new backend passes these unchanged, and
those of test_backend_contract_reads.py and test_backend_contract_lifecycle.py."""
import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any, Dict

from connect_mongodb_example.event_record import STORED_FIELDS, EventRecord
from tests.support.records import purchase_record

FIRST = datetime(2026, 11, 20, 10, 16, 5, 123000, tzinfo=timezone.utc)


def stored_values(record: EventRecord) -> Dict[str, Any]:
    """The stored fields; times to the millisecond, the precision of a BSON date."""
    def comparable(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc).replace(
                microsecond=value.microsecond // 1000 * 1000)
        return value
    return {name: comparable(getattr(record, name)) for name, _ in STORED_FIELDS}


async def test_a_new_record_keeps_every_stored_field(store, purchase_request, installation):
    record = purchase_record(purchase_request(), installation=installation, received_at=FIRST)
    unset = [name for name, value in stored_values(record).items() if value in (None, {})]
    assert not unset, f'the sample request leaves {unset} empty: the test would prove nothing'
    store.check_storable(record)
    assert await store.save(record) == 1
    [found] = await store.find(record.request_id, installation['id'])
    assert stored_values(found) == stored_values(record)


async def test_a_redelivery_only_counts_and_moves_last_received_at(
    store, purchase_request, installation,
):
    request = purchase_request()
    first = purchase_record(request, installation=installation, received_at=FIRST)
    later = purchase_record(request, installation=installation,
                            received_at=FIRST + timedelta(minutes=5))
    assert [await store.save(first), await store.save(later), await store.save(later)] == [
        1, 2, 3]
    [found] = await store.find(first.request_id)
    assert stored_values(found) == {
        **stored_values(first),
        'delivery_count': 3,
        'last_received_at': stored_values(later)['last_received_at'],
    }


async def test_a_delivery_written_late_never_moves_last_received_at_back(
    store, purchase_request, installation,
):
    """Concurrent deliveries of one event are written in any order: one received earlier
    but written last leaves the later time (and never goes before the first receipt)."""
    request = purchase_request()
    at = {minutes: purchase_record(request, installation=installation,
                                   received_at=FIRST + timedelta(minutes=minutes))
          for minutes in (-5, 0, 5, 10)}
    for minutes in (0, 10, 5, -5):
        await store.save(at[minutes])
    [found] = await store.find(request['id'])
    assert stored_values(found) == {
        **stored_values(at[0]),
        'delivery_count': 4,
        'last_received_at': stored_values(at[10])['last_received_at'],
    }


async def test_racing_first_deliveries_make_one_record(store, purchase_request):
    record = purchase_record(purchase_request(), received_at=FIRST)
    counts = await asyncio.gather(*(store.save(record) for _ in range(8)))
    assert max(counts) == 8
    [found] = await store.find(record.request_id)
    assert found.delivery_count == 8


async def test_find_returns_one_installations_records_oldest_first(
    store, purchase_request, installation,
):
    other = {**installation, 'id': 'EIN-0000-0000-0002', 'owner': {'id': 'VA-000-002'}}
    statuses = ('pending', 'inquiring', 'approved')
    for minutes, status in enumerate(statuses):
        request = purchase_request(status=status)
        for where in (installation, other):
            await store.save(purchase_record(
                request, installation=where, received_at=FIRST + timedelta(minutes=minutes)))
    mine = await store.find('PR-1234-5678-9012-001', installation['id'])
    assert [(r.status, r.installation_id) for r in mine] == [
        (status, installation['id']) for status in statuses]
    assert len(await store.find('PR-1234-5678-9012-001')) == 6
    assert await store.find('PR-0000-0000-0000-404') == []


async def test_it_answers_pings_and_works_again_after_close(store, purchase_request):
    await store.ping()
    await store.close()
    record = purchase_record(purchase_request(), received_at=FIRST)
    assert await store.save(record) == 1
    await store.close()
    assert await store.save(record) == 2
    assert store.describe().startswith(store.name)
