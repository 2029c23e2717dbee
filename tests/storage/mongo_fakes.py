"""An in-memory MongoDB (mongomock-motor) behind the mongodb backend's client factory."""
from typing import Any, Callable, Dict, List

import mongomock
from mongomock_motor import AsyncMongoMockClient

from connect_mongodb_example.storage import mongodb


class FakeMongo:
    """Every client the store opens, whichever driver it asks for, talks to one in-memory
    server, so data outlives a client (close and reopen) like on a real server."""

    def __init__(self):
        self.server = mongomock.MongoClient(tz_aware=True)
        self.drivers: List[str] = []
        self.options: List[Dict[str, Any]] = []
        self.clients: List[AsyncMongoMockClient] = []

    def client_class(self, driver: str) -> Callable[..., AsyncMongoMockClient]:
        self.drivers.append(driver)

        def create(uri: str, **options: Any) -> AsyncMongoMockClient:
            self.options.append(options)
            client = AsyncMongoMockClient(mock_mongo_client=self.server)
            self.clients.append(client)
            return client

        return create

    def collection(self, database: str = 'connect_events', name: str = 'events') -> Any:
        return self.server[database][name]

    def install(self, monkeypatch) -> 'FakeMongo':
        monkeypatch.setattr(mongodb, 'client_class', self.client_class)
        return self
