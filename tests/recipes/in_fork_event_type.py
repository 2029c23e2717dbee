"""Run in a fork by test_handle_another_event_type, once change requests are handled: one
task per event as the runner does it, then what the SQL store (DATABASE_URL) holds."""
import asyncio
import json
import logging
import os

from connect_mongodb_example.extension import StatefulEventsApplication
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import close_all, stores_for
from tests.support.requests import purchase_request

CHANGE_REQUEST_ID = 'PR-2222-3333-4444-001'
PURCHASE_REQUEST_ID = 'PR-1234-5678-9012-001'


async def main() -> None:
    config = {'DATABASE_URL': os.environ['DATABASE_URL']}
    logger = logging.LoggerAdapter(logging.getLogger('fork'), {})

    def task() -> StatefulEventsApplication:
        return StatefulEventsApplication(client=None, logger=logger, config=config)

    change = purchase_request(CHANGE_REQUEST_ID, type='change')
    results = [
        await task().handle_asset_change_request_processing(change),
        await task().handle_asset_change_request_processing(dict(change, status='scheduled')),
        await task().handle_asset_purchase_request_processing(
            purchase_request(PURCHASE_REQUEST_ID, status='scheduled')),
    ]
    [store] = stores_for(load_settings(config))
    stored = [record for request_id in (CHANGE_REQUEST_ID, PURCHASE_REQUEST_ID)
              for record in await store.find(request_id)]
    await close_all()
    print(json.dumps({
        'events': StatefulEventsApplication.get_events(),
        'results': [[result.status, result.output] for result in results],
        'stored': [[record.request_id, record.status, record.event_type] for record in stored],
    }))


asyncio.run(main())
