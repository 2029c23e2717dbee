"""Run in a fork by test_add_a_column_to_the_page, once `customer_id` is declared and named
in PAGE_COLUMNS: what the Events page is built from (/api/schema) and the page it reads
(/api/events), through eaas-core's test client on SQLite (DATABASE_URL)."""
import json
import os

from connect.eaas.core.testing.testclient import WebAppTestClient

from connect_mongodb_example.event_record import build_record
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import close_all, stores_for
from connect_mongodb_example.webapp import EventsWebApplication
from tests.support.requests import purchase_request

INSTALLATION = 'EIN-FORK'


def main() -> None:
    config = {'DATABASE_URL': os.environ['DATABASE_URL']}
    with WebAppTestClient(EventsWebApplication) as client:
        async def save() -> None:
            [store] = stores_for(load_settings(config))
            await store.save(build_record(purchase_request(), PURCHASE_REQUEST,
                                          installation={'id': INSTALLATION}))

        client.portal.call(save)
        schema = client.get('/api/schema', installation={'id': INSTALLATION},
                            config=config).json()
        [item] = client.get('/api/events', installation={'id': INSTALLATION},
                            config=config).json()
        client.portal.call(close_all)
    labels = {field['name']: field['label'] for field in schema['fields']}
    print(json.dumps({
        'columns': [[name, labels[name]] for name in schema['columns']],
        'listed': item['customer_id'],
    }))


main()
