"""Run in a fork by test_add_a_field_to_the_record, once `customer_id` is declared: the SQL
databases written before the change (OLD_DATABASES, a JSON list of URLs) get the column on
first use, keep their record (customer id None) and store the new field, which the Events
page's API lists."""
import asyncio
import json
import os

from connect_mongodb_example.event_record import build_record
from connect_mongodb_example.event_views import listed_event
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.base import EventFilter
from connect_mongodb_example.storage.registry import close_all, stores_for
from tests.support.requests import purchase_request


async def main() -> None:
    found = {}
    listed = {}
    for url in json.loads(os.environ['OLD_DATABASES']):
        [store] = stores_for(load_settings({'DATABASE_URL': url}))
        await store.save(build_record(purchase_request(status='approved'), PURCHASE_REQUEST))
        records = await store.find('PR-1234-5678-9012-001')
        found[url.split(':')[0]] = [[record.status, record.customer_id] for record in records]
        await store.save(build_record(purchase_request(), PURCHASE_REQUEST,
                                      installation={'id': 'EIN-FORK'}))
        [page_item] = await store.list_events(EventFilter('EIN-FORK'), limit=10)
        listed[url.split(':')[0]] = listed_event(page_item).get('customer_id')
    found['listed'] = listed
    await close_all()
    print(json.dumps(found))


asyncio.run(main())
