"""Index creation racing other processes: what a MongoDB server answers when several
workers create the same indexes at once (the race itself is run against a real server in
test_concurrent_first_use.py)."""
import pytest
from mongomock_motor import AsyncMongoMockCollection
from pymongo.errors import OperationFailure

from connect_mongodb_example.errors import StorageRejected
from connect_mongodb_example.storage.mongo_documents import KEY_INDEX_NAME
from connect_mongodb_example.storage.mongodb import MongoEventStore
from connect_mongodb_example.variables import ConfigReader
from tests.storage.mongo_fakes import FakeMongo
from tests.support.records import purchase_record


@pytest.fixture
async def store(monkeypatch):
    fake = FakeMongo().install(monkeypatch)
    store = MongoEventStore(MongoEventStore.parse_settings(ConfigReader({
        'MONGODB_URI': 'mongodb://db.example.com:27017'})))
    yield store, fake
    await store.close()


def answer_first(monkeypatch, *errors):
    """The first create_index calls fail with `errors`, the next ones go through."""
    original = AsyncMongoMockCollection.create_index
    pending = list(errors)
    calls = []

    async def racing(self, keys, **options):
        calls.append(options['name'])
        if pending:
            raise pending.pop(0)
        return await original(self, keys, **options)

    monkeypatch.setattr(AsyncMongoMockCollection, 'create_index', racing)
    return calls


@pytest.mark.parametrize(('code', 'name'), [
    (48, 'NamespaceExists'), (68, 'IndexAlreadyExists'), (276, 'IndexBuildAborted'),
    (325, 'IndexBuildAlreadyInProgress'),
])
async def test_another_process_creating_the_index_is_waited_out(
    store, monkeypatch, purchase_request, code, name,
):
    store, fake = store
    calls = answer_first(monkeypatch, OperationFailure(name, code))
    record = purchase_record(purchase_request())
    assert await store.save(record) == 1
    assert calls[:2] == [KEY_INDEX_NAME, KEY_INDEX_NAME]
    assert fake.collection().index_information()[KEY_INDEX_NAME]['unique'] is True


async def test_a_race_that_never_settles_is_reported(store, monkeypatch, purchase_request):
    store, fake = store
    answer_first(monkeypatch, *[OperationFailure('IndexBuildAlreadyInProgress', 325)] * 10)
    with pytest.raises(StorageRejected, match='code 325'):
        await store.save(purchase_record(purchase_request()))
    assert fake.collection().count_documents({}) == 0
