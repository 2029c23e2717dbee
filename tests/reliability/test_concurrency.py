"""Many events at once, with redeliveries racing their first delivery: counts stay exact."""
import asyncio

from connect.eaas.core.enums import ResultType

from tests.reliability.helpers import deliver, key_of, stored_rows

EVENTS = 500
REDELIVERED_EVERY = 5
COPIES = 3


async def test_500_concurrent_events_with_racing_redeliveries_are_counted_exactly(
    database_url, purchase_request, installation, logger, report,
):
    # Generous: the timeout also covers the wait for a free worker thread, and 700 tasks
    # share 8; this test is about counts, the timeouts have their own tests.
    config = {'DATABASE_URL': database_url, 'STORAGE_TIMEOUT_SECONDS': '120'}
    requests = [purchase_request(f'PR-7600-0000-0000-{index:03d}') for index in range(EVENTS)]
    deliveries = []
    for index, request in enumerate(requests):
        copies = COPIES if index % REDELIVERED_EVERY == 0 else 1
        deliveries += [request] * copies
    responses = await asyncio.gather(*(
        deliver(request, config, logger, installation) for request in deliveries
    ))
    assert {response.status for response in responses} == {ResultType.SUCCESS}

    rows = stored_rows(database_url)
    expected = {
        key_of(request, installation):
            (request['id'], installation['id'], installation['owner']['id'],
             COPIES if index % REDELIVERED_EVERY == 0 else 1)
        for index, request in enumerate(requests)
    }
    assert rows == expected
    report(deliveries=len(deliveries), stored=len(rows),
           delivery_count_total=sum(row[3] for row in rows.values()))
