"""Reading back what was stored, through the extension's own storage interface."""
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import stores_for
from localdev.connect_emulator import Delivery, Event, TaskResult
from localdev.readback import read_back
from tests.support.records import purchase_record


def delivered(event: Event, count: int = 1) -> Delivery:
    results = [TaskResult(f'TQ-{n}', event.request_id, event.installation_id, 'success')
               for n in range(count)]
    return Delivery(event, results)


async def test_each_delivery_is_matched_to_its_record_by_idempotency_key(
    sqlite_url, purchase_request, installation,
):
    variables = {'DATABASE_URL': sqlite_url}
    stored_twice = Event(purchase_request('PR-1', 'approved'), installation, deliveries=2)
    never_stored = Event(purchase_request('PR-1', 'pending'), installation)
    [store] = stores_for(load_settings(variables))
    record = purchase_record(stored_twice.request, installation=installation)
    await store.save(record)
    await store.save(record)

    rows = await read_back([delivered(stored_twice, 2), delivered(never_stored)], variables)

    [(name, found)] = rows[0].records.items()
    assert name == store.describe()
    assert (found.key, found.delivery_count, found.account_id) == (
        record.key, 2, installation['owner']['id'],
    )
    assert rows[0].stored
    assert rows[1].records == {store.describe(): None}
    assert not rows[1].stored


async def test_a_count_below_the_deliveries_is_not_stored(sqlite_url, purchase_request):
    variables = {'DATABASE_URL': sqlite_url}
    event = Event(purchase_request('PR-2', 'pending'), deliveries=2)
    [store] = stores_for(load_settings(variables))
    await store.save(purchase_record(event.request))

    [row] = await read_back([delivered(event, 2)], variables)

    assert not row.stored


async def test_requests_the_extension_cannot_store_and_unreachable_storage_are_explained(
    purchase_request,
):
    unstorable = Event({'id': 'PR-9', 'status': 'draft'})
    event = Event(purchase_request('PR-3', 'pending'))
    variables = {'DATABASE_URL': 'postgresql://postgres@127.0.0.1:1/none?connect_timeout=2'}

    rows = await read_back([delivered(unstorable), delivered(event)], variables)

    assert "status 'draft'" in rows[0].problem
    assert rows[1].problem.startswith('cannot read back: sql (postgresql://')
    assert not any(row.stored for row in rows)
