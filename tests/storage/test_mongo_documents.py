"""The document both MongoDB paths write, and the size check made before any backend writes."""
import pytest

from connect_mongodb_example.config import ConfigReader
from connect_mongodb_example.errors import InvalidRequest
from connect_mongodb_example.records import build_record
from connect_mongodb_example.storage import mongo_documents as documents
from connect_mongodb_example.storage.dataapi import DataApiEventStore
from connect_mongodb_example.storage.mongodb import MongoEventStore


def test_a_document_over_16_mib_is_refused_before_writing(purchase_request):
    record = build_record(purchase_request(note='x' * (16 * 1024 * 1024)))
    with pytest.raises(InvalidRequest) as error:
        documents.check_size(record, 'mongodb (db.events)')
    message = str(error.value)
    assert message.startswith('mongodb (db.events): request PR-1234-5678-9012-001 makes a ')
    assert 'over the 16777216-byte MongoDB limit' in message


def test_a_document_just_under_the_limit_passes(purchase_request):
    documents.check_size(build_record(purchase_request(note='x' * 16_000_000)), 'mongodb')


@pytest.mark.parametrize('config', [
    {'MONGODB_URI': 'mongodb://db:27017'},
    {'DATA_API_URL': 'https://data.example.com', 'DATA_API_KEY': 'k'},
])
def test_both_mongodb_backends_check_the_size(config, purchase_request):
    reader = ConfigReader(config)
    backend = MongoEventStore if 'MONGODB_URI' in config else DataApiEventStore
    store = backend(backend.parse_settings(reader))
    with pytest.raises(InvalidRequest, match='MongoDB limit'):
        store.check_storable(build_record(purchase_request(note='x' * 17_000_000)))
