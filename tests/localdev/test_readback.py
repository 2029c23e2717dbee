"""Reading back what was stored, through the extension's own storage interface; the
seeded history and installation records too."""
import json
from datetime import datetime, timedelta, timezone

import pytest

from connect_mongodb_example.errors import StorageUnavailable
from connect_mongodb_example.installation_record import InstallationRecord
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import stores_for
from localdev.connect_emulator import (
    Delivery,
    Event,
    EventFileError,
    InstallationChange,
    TaskResult,
)
from localdev.demo_history import HISTORY_AGE_DAYS, history_events, seed_history
from localdev.readback import (
    SEEDED,
    Deletion,
    count_by_installation,
    read_back,
    read_events,
    read_installations,
    selected_stores,
)
from tests.support.records import purchase_record

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


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
    skipped = Event({'id': 'PR-9', 'status': 'draft'})
    invalid = Event({'id': 'PR-8', 'status': 'pending'})
    event = Event(purchase_request('PR-3', 'pending'))
    variables = {'DATABASE_URL': 'postgresql://postgres@127.0.0.1:1/none?connect_timeout=2'}

    rows = await read_back([delivered(skipped), delivered(invalid), delivered(event)], variables)

    assert (rows[0].expected, rows[1].expected, rows[2].expected) == ('skip', 'fail', 'done')
    assert "status 'draft' is not one the extension subscribes to" in rows[0].expected_reason
    assert "request PR-8 has no 'updated' time" in rows[1].expected_reason
    assert rows[2].problem.startswith('cannot read back: sql (postgresql://')
    assert not any(row.stored for row in rows)
    # Only the event that should have been stored and was not counts as missing.
    assert [row.missing for row in rows] == [False, False, True]


async def test_a_record_a_backend_could_never_keep_is_expected_to_fail(
    sqlite_url, purchase_request,
):
    huge = purchase_request('PR-4', 'pending')
    huge['description'] = 'x' * (17 * 1024 * 1024)  # over MongoDB's 16 MiB
    variables = {'STORAGE_BACKENDS': 'sql,mongodb', 'DATABASE_URL': sqlite_url,
                 'MONGODB_URI': 'mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100'}

    [row] = await read_back([delivered(Event(huge))], variables)

    assert row.expected == 'fail'
    assert 'over the 16777216-byte MongoDB limit' in row.expected_reason


FAKE = {'STORAGE_BACKENDS': 'fake'}


async def test_an_installation_row_holds_the_record_the_extension_kept(fake_backend, installation):
    [store] = selected_stores(FAKE)
    await store.save_installation(InstallationRecord(installation['id'], 'uninstalled', NOW))
    kept = Delivery(InstallationChange(installation, 'uninstalled'),
                    [TaskResult('TQ-1', installation['id'], installation['id'], 'success')])
    other = {'id': 'EIN-0000', 'owner': {'id': 'VA-0'}}
    lost = Delivery(InstallationChange(other, 'installed'),
                    [TaskResult('TQ-2', 'EIN-0000', 'EIN-0000', 'success')])
    skipped = Delivery(InstallationChange(other, 'installed'),
                       [TaskResult('TQ-3', 'EIN-0000', 'EIN-0000', 'skip')])
    subscriptions = {'installation_status_change': ['uninstalled']}

    rows = await read_installations([store], [kept, lost], None, 'installation_status_change')
    [skip] = await read_installations([store], [skipped], subscriptions,
                                      'installation_status_change')

    assert rows[0].records == {'fake': InstallationRecord(installation['id'], 'uninstalled', NOW)}
    assert not rows[0].missing
    assert rows[1].records == {'fake': None}
    assert rows[1].missing
    assert (skip.expected, skip.missing) == ('skip', False)


async def test_an_event_a_turn_deleted_as_due_counts_as_stored(
    fake_backend, purchase_request, installation,
):
    purged = Event(purchase_request('PR-1', 'approved'), installation)
    gone = Event(purchase_request('PR-2', 'approved'), installation)
    key = lambda event: purchase_record(event.request, installation=installation).key  # noqa: E731
    deletions = {('fake', key(purged)): Deletion('the Data lifecycle job', 'purge'),
                 ('fake', key(gone)): Deletion('the Data lifecycle job', None)}

    rows = await read_back([delivered(purged), delivered(gone)], FAKE, deletions)

    assert [row.records for row in rows] == [{'fake': None}, {'fake': None}]
    assert [row.stored for row in rows] == [True, False]  # the second was not due
    assert [row.missing for row in rows] == [False, True]


async def test_seeded_history_is_stored_as_received_long_ago_and_read_back_as_such(
    fake_backend, tmp_path, purchase_request, installation,
):
    (tmp_path / 'history').mkdir()
    (tmp_path / 'history' / '01.json').write_text(json.dumps(
        {'installation': installation, 'request': purchase_request('PR-OLD', 'approved')}))
    history = history_events(tmp_path)

    assert await seed_history(history, FAKE) == {}

    [store] = selected_stores(FAKE)
    [record] = await store.find('PR-OLD', installation['id'])
    age = datetime.now(timezone.utc) - record.received_at
    assert timedelta(days=HISTORY_AGE_DAYS - 1) < age < timedelta(days=HISTORY_AGE_DAYS + 1)
    [row] = await read_events([store], [Delivery(history[0], [])], {}, expected=SEEDED)
    assert (row.stored, row.missing) == (True, False)
    assert await count_by_installation([store], [installation['id'], 'EIN-NONE']) == {
        installation['id']: {'fake': 1}, 'EIN-NONE': {'fake': 0}}


async def test_history_the_extension_could_not_store_is_refused_before_anything_starts(
    tmp_path, installation,
):
    (tmp_path / 'history').mkdir()
    (tmp_path / 'history' / 'bad.json').write_text(json.dumps(
        {'installation': installation, 'request': {'id': 'PR-1', 'status': 'pending'}}))

    with pytest.raises(EventFileError, match=r"bad\.json: cannot be seeded: .*'updated'"):
        history_events(tmp_path)


async def test_a_backend_that_refuses_the_history_is_named_and_the_rest_goes_on(
    fake_backend, purchase_request,
):
    [store] = selected_stores(FAKE)
    store.fail_with = StorageUnavailable('fake: down')

    problems = await seed_history([Event(purchase_request('PR-1', 'pending'))], FAKE)

    assert problems == {'fake': 'cannot seed the history: fake: down'}
