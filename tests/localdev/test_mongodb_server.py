"""The throwaway MongoDB-compatible server the tests and `make demo --mongodb-local` use."""
from urllib.parse import quote

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from localdev import mongodb_server
from localdev.demo import parse_args


@pytest.mark.mongodb
def test_demo_option_starts_a_server_checking_passwords_and_removes_it():
    if mongodb_server.available():
        pytest.skip(mongodb_server.available())
    assignments = ['DATABASE_URL=sqlite:///.demo/events.sqlite3']
    with mongodb_server.for_demo(True, assignments):
        uri = dict(item.split('=', 1) for item in assignments)['MONGODB_URI']
        with MongoClient(uri, serverSelectionTimeoutMS=10000) as client:
            client.connect_events.events.insert_one({'key': 'demo'})
            assert client.connect_events.events.count_documents({}) == 1
        wrong = uri.replace(quote(mongodb_server.APP_PASSWORD, safe=''), 'not-it')
        with MongoClient(wrong, serverSelectionTimeoutMS=10000) as client, \
                pytest.raises(OperationFailure) as refused:
            client.connect_events.events.find_one()
        assert refused.value.code == 18
    assert assignments[-1] == 'STORAGE_BACKENDS=sql,mongodb'
    with MongoClient(uri, serverSelectionTimeoutMS=300) as client, \
            pytest.raises(ServerSelectionTimeoutError):
        client.admin.command('ping')


def test_demo_option_keeps_the_backends_the_user_chose():
    added = mongodb_server.demo_assignments('mongodb://h', ['STORAGE_BACKENDS=mongodb'])
    assert added == ['MONGODB_URI=mongodb://h']
    assert parse_args(['--mongodb-local']).mongodb_local is True


def test_without_the_option_nothing_starts():
    assignments = []
    with mongodb_server.for_demo(False, assignments):
        assert assignments == []
