"""The benchmark's Data API server process, whose output is read to the end, and its raw
baseline, which makes the calls the extension makes."""
import asyncio
import logging
import sys

from connect_mongodb_example.event_record import build_record
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.storage import BACKENDS
from connect_mongodb_example.variables import ConfigReader
from localdev.bench.dataapi import (
    API_KEY,
    DATABASE,
    RawDataApiWork,
    drain,
    handler_config,
)
from localdev.bench.workloads import EventFactory
from localdev.dataapi_server import DataApiServer

# Far more than a pipe holds (64 KiB on Linux): the writer blocks until it is read.
WRITER = 'import sys\nfor n in range(20000):\n    print(f"line {n:05d} " + "x" * 40)\n'


async def test_drain_reads_a_chatty_process_to_the_end(caplog):
    process = await asyncio.create_subprocess_exec(
        sys.executable, '-c', WRITER, stdout=asyncio.subprocess.PIPE,
    )
    with caplog.at_level(logging.DEBUG, logger='localdev.bench.dataapi'):
        await asyncio.wait_for(drain(process.stdout), 60)

    assert await asyncio.wait_for(process.wait(), 60) == 0
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 20000
    assert lines[-1] == 'Data API server: line 19999 ' + 'x' * 40


async def test_the_raw_baseline_makes_the_calls_the_extension_makes():
    """A new event: 4 POSTs (upsert, read back, count, marker off); a redelivery: 2. The
    raw baseline's documents and counts are the extension's."""
    factory = EventFactory(tag=7, distinct=2)
    async with DataApiServer(api_key=API_KEY) as server:
        store = new_store(handler_config(server.base_url, 'by_extension'))
        raw = RawDataApiWork(server.base_url, 'by_raw', factory)
        try:
            await store.save(build_record(factory.request(0), PURCHASE_REQUEST,
                                          installation=factory.installation))  # schema, once
            posts = {'extension': [], 'raw': []}
            for n in (1, 3):  # 3 is event 1 again (2 distinct ids): a redelivery
                before = server.requests
                await store.save(build_record(factory.request(n), PURCHASE_REQUEST,
                                              installation=factory.installation))
                posts['extension'].append(server.requests - before)
            for n in (0, 1, 3):
                before = server.requests
                assert await raw(n)
                posts['raw'].append(server.requests - before)
        finally:
            await store.close()
            await raw.close()
        assert posts == {'extension': [4, 2], 'raw': [4, 4, 2]}

        def stored(collection):
            documents = server.collection(DATABASE, collection).find({}, {'_id': False})
            return sorted(({name: value for name, value in document.items()
                            if name not in ('received_at', 'last_received_at', 'request')}
                           for document in documents), key=lambda document: document['key'])

        def counts(collection):
            return sorted((document['_id'], document['events'], document['version'])
                          for document in server.collection(DATABASE, collection + '_counts')
                          .find())

        assert stored('by_raw') == stored('by_extension')
        assert [document['delivery_count'] for document in stored('by_raw')] == [1, 2]
        assert 'counting' not in str(stored('by_raw'))
        assert counts('by_raw') == counts('by_extension') != []


def new_store(config):
    backend = BACKENDS[config['STORAGE_BACKENDS']]
    return backend(backend.parse_settings(ConfigReader(config)))
