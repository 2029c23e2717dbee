"""The MongoDB server of the mongodb-marked tests: MONGODB_URI when set (the GitHub
workflow's real MongoDB, the reference), else a throwaway SecantusDB with authentication on.
"""
import os
from dataclasses import dataclass
from typing import Iterator, Optional

import pytest

from localdev.mongodb_server import ThrowawayMongo, available

#: The databases the tests write to; the throwaway server's application user may write them.
TEST_DATABASES = ('connect_events', 'connect_events_tests')


@dataclass(frozen=True)
class MongoServer:
    #: The application's connection string (a readWrite user on the throwaway server).
    uri: str
    #: A connection string allowed to drop collections and create users.
    admin_uri: str
    #: True for the throwaway SecantusDB, whose differences from MongoDB some tests note.
    throwaway: bool


def session_server() -> Iterator[MongoServer]:
    configured = os.environ.get('MONGODB_URI', '')
    if configured:
        yield MongoServer(uri=configured, admin_uri=configured, throwaway=False)
        return
    reason: Optional[str] = available()
    if reason:
        pytest.skip(f'MongoDB tests not run: MONGODB_URI is not set and {reason}')
    # Installed but unable to start is a failure, not a reason to skip.
    server = ThrowawayMongo(databases=list(TEST_DATABASES))
    server.start()
    try:
        yield MongoServer(uri=server.uri(), admin_uri=server.admin_uri(), throwaway=True)
    finally:
        server.destroy()
