"""STORAGE_BACKENDS=sql,mongodb,dataapi: one event lands once in each backend."""
import asyncio

import pytest
from connect.eaas.core.enums import ResultType

from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import stores_for
from localdev.dataapi_server import DataApiServer
from tests.storage.mongo_fakes import FakeMongo
from tests.support.delivery import deliver
from tests.support.records import purchase_record, summary

DATA_API_KEY = 'multi-backend-key'


@pytest.fixture
async def config(sqlite_url, monkeypatch):
    FakeMongo().install(monkeypatch)
    async with DataApiServer(api_key=DATA_API_KEY) as server:
        yield {
            'STORAGE_BACKENDS': 'sql,mongodb,dataapi',
            'DATABASE_URL': sqlite_url,
            'MONGODB_URI': 'mongodb://127.0.0.1:27017',
            'DATA_API_URL': server.base_url,
            'DATA_API_KEY': DATA_API_KEY,
        }


async def test_every_backend_holds_the_event_once(config, purchase_request, installation,
                                                  logger):
    request = purchase_request(status='approved')
    responses = await asyncio.gather(*(
        deliver(request, config=config, logger=logger, installation=installation)
        for _ in range(3)
    ))
    assert {response.status for response in responses} == {ResultType.SUCCESS}

    built = purchase_record(request, installation=installation)
    stores = stores_for(load_settings(config))
    assert [store.name for store in stores] == ['sql', 'mongodb', 'dataapi']
    for store in stores:
        [record] = await store.find(request['id'])
        # Every declared field as the handler built it, counted three times.
        assert summary(record) == {**summary(built), 'delivery_count': 3}, store.name
        assert record.key == f'{installation["id"]}/{request["id"]}:approved:{request["updated"]}'
        assert record.request == request, store.name
        assert record.received_at <= record.last_received_at, store.name
