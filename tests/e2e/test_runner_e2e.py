"""The real connect-extension-runner, offline, against the Connect emulation.

`cextrun` loads the extension from its entry point, connects over TLS to the emulation,
takes its setup, fetches each task's request and installation from the emulated API, runs
the handler, and sends the results back. The records are then read through the
extension's own storage interface, after the runner has stopped.
"""
import asyncio
import copy

import pytest

from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import stores_for
from localdev.connect_emulator import Event
from localdev.offline import offline_runner

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

VENDOR = {'id': 'EIN-1111-2222-3333', 'owner': {'id': 'VA-111-111', 'name': 'Vendor One'}}
DISTRIBUTOR = {'id': 'EIN-4444-5555-6666', 'owner': {'id': 'PA-222-222', 'name': 'Distributor'}}
DELIVERY_TIMEOUT_SECONDS = 90


def request_of(purchase_request, request_id, status, updated, asset_id, product_id):
    request = purchase_request(request_id, status, updated=updated)
    request['asset']['id'] = asset_id
    request['asset']['product'] = dict(request['asset']['product'], id=product_id)
    return request


async def test_the_real_runner_stores_each_event_once_and_answers_each_task(
    tmp_path, purchase_request,
):
    database_url = f'sqlite:///{tmp_path}/events.sqlite3'
    pending = request_of(purchase_request, 'PR-1001-0001-0001-001', 'pending',
                         '2026-11-20T10:00:00+00:00', 'AS-1001-0001-0001', 'PRD-100-100-100')
    approved = copy.deepcopy(pending)
    approved.update(status='approved', updated='2026-11-20T11:00:00+00:00')
    inquiring = request_of(purchase_request, 'PR-2002-0002-0002-001', 'inquiring',
                           '2026-11-20T12:00:00+00:00', 'AS-2002-0002-0002', 'PRD-200-200-200')
    single_account = request_of(purchase_request, 'PR-3003-0003-0003-001', 'failed',
                                '2026-11-20T13:00:00+00:00', 'AS-3003-0003-0003',
                                'PRD-300-300-300')
    draft = request_of(purchase_request, 'PR-4004-0004-0004-001', 'draft',
                       '2026-11-20T14:00:00+00:00', 'AS-4004-0004-0004', 'PRD-400-400-400')
    events = [
        Event(pending, VENDOR),
        Event(approved, VENDOR, deliveries=2),
        Event(inquiring, DISTRIBUTOR),
        Event(single_account),
        Event(draft, DISTRIBUTOR),  # a status the extension did not subscribe to
    ]
    log = tmp_path / 'runner.log'

    try:
        async with offline_runner(variables={'DATABASE_URL': database_url},
                                  log_path=log) as emulator:
            deliveries = await asyncio.wait_for(
                emulator.deliver_all(events), DELIVERY_TIMEOUT_SECONDS,
            )
    finally:
        print(log.read_text(errors='replace')[-8000:])  # shown when the test fails

    # What the runner answered over the websocket, per delivery.
    assert [[result.result for result in delivery.results] for delivery in deliveries] == [
        ['success'], ['success', 'success'], ['success'], ['success'], ['skip'],
    ]
    assert [delivery.results[0].installation_id for delivery in deliveries] == [
        VENDOR['id'], VENDOR['id'], DISTRIBUTOR['id'], None, DISTRIBUTOR['id'],
    ]
    assert emulator.unknown_calls == []
    assert emulator.channel.setup_requests[0].event_subscriptions[
        'asset_purchase_request_processing'
    ] == ['pending', 'approved', 'failed', 'inquiring', 'scheduled', 'revoking', 'revoked']

    # What the extension stored, through its own storage interface.
    [store] = stores_for(load_settings({'DATABASE_URL': database_url}))
    stored = {}
    for request_id in ('PR-1001-0001-0001-001', 'PR-2002-0002-0002-001',
                       'PR-3003-0003-0003-001', 'PR-4004-0004-0004-001'):
        for record in await store.find(request_id):
            assert (record.request_id, record.status) not in stored
            stored[(record.request_id, record.status)] = record

    def fields(record):
        return (record.request_id, record.status, record.updated, record.asset_id,
                record.product_id, record.installation_id, record.account_id,
                record.delivery_count)

    assert sorted(fields(record) for record in stored.values()) == [
        ('PR-1001-0001-0001-001', 'approved', '2026-11-20T11:00:00+00:00',
         'AS-1001-0001-0001', 'PRD-100-100-100', VENDOR['id'], 'VA-111-111', 2),
        ('PR-1001-0001-0001-001', 'pending', '2026-11-20T10:00:00+00:00',
         'AS-1001-0001-0001', 'PRD-100-100-100', VENDOR['id'], 'VA-111-111', 1),
        ('PR-2002-0002-0002-001', 'inquiring', '2026-11-20T12:00:00+00:00',
         'AS-2002-0002-0002', 'PRD-200-200-200', DISTRIBUTOR['id'], 'PA-222-222', 1),
        ('PR-3003-0003-0003-001', 'failed', '2026-11-20T13:00:00+00:00',
         'AS-3003-0003-0003', 'PRD-300-300-300', None, None, 1),
    ]
    # The whole request, as the runner fetched it from the emulated API, is kept.
    assert stored[('PR-1001-0001-0001-001', 'approved')].request == approved
    assert stored[('PR-2002-0002-0002-001', 'inquiring')].request == inquiring
    assert {record.event_type for record in stored.values()} == {
        'asset_purchase_request_processing',
    }
