"""The store every contract test runs against: one per registered backend and server (see
tests/support/backends.py)."""
import pytest

from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.base import EventStore
from connect_mongodb_example.storage.registry import stores_for
from tests.support.backends import backend_config, backend_targets


@pytest.fixture(params=backend_targets())
async def store(request) -> EventStore:
    async with backend_config(request.param, request) as config:
        yield stores_for(load_settings(config))[0]
