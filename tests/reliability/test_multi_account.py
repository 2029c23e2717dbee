"""One deployment serves many installations (accounts): each event keeps its own
installation and account, and reading for one installation never returns another's."""
import asyncio

from connect.eaas.core.enums import ResultType

from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import stores_for
from tests.reliability.helpers import deliver, key_of, stored_rows

VENDOR_A = {'id': 'EIN-1000-0000-000A', 'owner': {'id': 'VA-000-00A', 'name': 'Vendor A'}}
VENDOR_B = {'id': 'EIN-1000-0000-000B', 'owner': {'id': 'VA-000-00B', 'name': 'Vendor B'}}
DISTRIBUTOR = {'id': 'EIN-1000-0000-000D', 'owner': {'id': 'PA-000-00D', 'name': 'Distributor'}}
PER_ACCOUNT = 30


async def test_each_installation_stores_and_reads_only_its_own_events(
    database_url, purchase_request, logger, report,
):
    config = {'DATABASE_URL': database_url}
    deliveries = [
        (purchase_request(f'PR-{tag}-0000-0000-{index:03d}', status=status), installation)
        for tag, installation in (('8000', VENDOR_A), ('8001', VENDOR_B))
        for index in range(PER_ACCOUNT)
        for status in ('pending', 'approved')
    ]
    responses = await asyncio.gather(*(
        deliver(request, config, logger, installation) for request, installation in deliveries
    ))
    assert {response.status for response in responses} == {ResultType.SUCCESS}

    rows = stored_rows(database_url)
    assert rows == {
        key_of(request, installation):
            (request['id'], installation['id'], installation['owner']['id'], 1)
        for request, installation in deliveries
    }
    [store] = stores_for(load_settings(config))
    for own, other, tag in ((VENDOR_A, VENDOR_B, '8000'), (VENDOR_B, VENDOR_A, '8001')):
        request_id = f'PR-{tag}-0000-0000-007'
        mine = await store.find(request_id, installation_id=own['id'])
        assert [(r.status, r.installation_id, r.account_id) for r in mine] == [
            ('pending', own['id'], own['owner']['id']),
            ('approved', own['id'], own['owner']['id']),
        ]
        assert await store.find(request_id, installation_id=other['id']) == []
    report(installations=2, stored=len(rows))


async def test_a_request_seen_by_vendor_and_distributor_is_stored_for_each(
    database_url, purchase_request, logger,
):
    config = {'DATABASE_URL': database_url}
    for installation in (VENDOR_A, DISTRIBUTOR, VENDOR_A):
        response = await deliver(purchase_request(), config, logger, installation)
        assert response.status == ResultType.SUCCESS
    [store] = stores_for(load_settings(config))
    vendor = await store.find('PR-1234-5678-9012-001', installation_id=VENDOR_A['id'])
    distributor = await store.find('PR-1234-5678-9012-001', installation_id=DISTRIBUTOR['id'])
    assert [(r.account_id, r.delivery_count) for r in vendor] == [('VA-000-00A', 2)]
    assert [(r.account_id, r.delivery_count) for r in distributor] == [('PA-000-00D', 1)]
    assert sorted(row[1] for row in stored_rows(database_url).values()) == sorted([
        DISTRIBUTOR['id'], VENDOR_A['id'],
    ])
