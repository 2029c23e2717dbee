"""The document both MongoDB paths write, and the size check made before any backend writes."""
from dataclasses import replace
from datetime import datetime, timezone

import bson
import pytest

from connect_mongodb_example.errors import InvalidRequest
from connect_mongodb_example.storage import mongo_documents as documents
from connect_mongodb_example.storage.base import EventFilter, PageCursor
from connect_mongodb_example.storage.dataapi import DataApiEventStore
from connect_mongodb_example.storage.mongodb import MongoEventStore
from connect_mongodb_example.variables import ConfigReader
from tests.storage.mongo_fakes import FakeMongo
from tests.support.records import purchase_record


def test_a_document_over_16_mib_is_refused_before_writing(purchase_request):
    record = purchase_record(purchase_request(note='x' * (16 * 1024 * 1024)))
    with pytest.raises(InvalidRequest) as error:
        documents.check_size(record, 'mongodb (db.events)')
    message = str(error.value)
    assert message.startswith('mongodb (db.events): request PR-1234-5678-9012-001 makes a ')
    assert 'over the 16777216-byte MongoDB limit' in message


async def test_the_limit_is_exact_for_the_stored_document(purchase_request, monkeypatch):
    """A request whose stored document (with `_id`) is exactly MAX_DOCUMENT_BYTES passes and
    one byte more fails; the size is measured on what the mongodb backend really stored."""
    fake_mongo = FakeMongo().install(monkeypatch)
    store = MongoEventStore(MongoEventStore.parse_settings(
        ConfigReader({'MONGODB_URI': 'mongodb://db:27017'})))
    try:
        await store.save(purchase_record(purchase_request(note='')))
    finally:
        await store.close()
    [stored] = fake_mongo.collection().find()
    assert isinstance(stored['_id'], bson.ObjectId)
    padding = documents.MAX_DOCUMENT_BYTES - len(bson.encode(stored))

    at_limit = purchase_record(purchase_request(note='x' * padding))
    documents.check_size(at_limit, 'mongodb')
    with pytest.raises(InvalidRequest, match='makes a 16777217-byte document'):
        documents.check_size(purchase_record(purchase_request(note='x' * (padding + 1))),
                             'mongodb')


@pytest.mark.parametrize(('request_part', 'words'), [
    ({'params\x00': 'x'}, 'must not contain the NULL byte'),
    ({'note': 'broken \ud800 text'}, 'surrogates not allowed'),
    ({'asset': {'\udfff': 1}}, 'surrogates not allowed'),
])
def test_what_bson_cannot_encode_is_refused_before_writing(purchase_request, request_part,
                                                           words):
    clean = purchase_record(purchase_request())
    record = replace(clean, request={**clean.request, **request_part})
    with pytest.raises(InvalidRequest) as error:
        documents.check_size(record, 'mongodb (db.events)')
    message = str(error.value)
    assert message.startswith('mongodb (db.events): request PR-1234-5678-9012-001 cannot be a '
                              'MongoDB document: ')
    assert words in message


@pytest.mark.parametrize('config', [
    {'MONGODB_URI': 'mongodb://db:27017'},
    {'DATA_API_URL': 'https://data.example.com', 'DATA_API_KEY': 'k'},
])
def test_both_mongodb_backends_check_the_size(config, purchase_request):
    reader = ConfigReader(config)
    backend = MongoEventStore if 'MONGODB_URI' in config else DataApiEventStore
    store = backend(backend.parse_settings(reader))
    with pytest.raises(InvalidRequest, match='MongoDB limit'):
        store.check_storable(purchase_record(purchase_request(note='x' * 17_000_000)))


def test_a_cursor_finer_than_a_millisecond_needs_no_key():
    """Cursors come from records read back (milliseconds); one from elsewhere falls between
    two stored times, and every event of the earlier millisecond is older than it."""
    moment = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=timezone.utc)
    floor = moment.replace(microsecond=123000)
    where = EventFilter('EIN-A')
    assert documents.page_filter(where, PageCursor(moment, 'k'), None) == {
        'installation_id': 'EIN-A', 'received_at': {'$lte': floor}}
    assert documents.page_filter(where, None, PageCursor(moment, 'k')) == {
        'installation_id': 'EIN-A', 'received_at': {'$gt': floor}}
    assert documents.page_filter(where, PageCursor(floor, 'k'), None) == {
        'installation_id': 'EIN-A', 'received_at': {'$lte': floor},
        '$or': [{'received_at': {'$lt': floor}}, {'key': {'$lt': 'k'}}]}


@pytest.mark.parametrize('text', [
    '2026-11-20T10:15:03.12Z', '2026-11-20T10:15:03.120Z', '2026-11-20T10:15:03.120000123Z',
    '2026-11-20T11:15:03.12+01:00',
])
def test_times_in_plain_json_replies_are_read_whatever_their_digits(text):
    assert documents.parse_moment(text) == datetime(2026, 11, 20, 10, 15, 3, 120000,
                                                    tzinfo=timezone.utc)


def test_one_installations_counts_are_one_id_range_no_other_shares():
    import mongomock

    counts = mongomock.MongoClient().db.counts
    ids = ['EIN-A', 'EIN-A"', 'EIN-A,', 'EIN-AB', 'EIN-A\\', 'EIN-Ä', 'EIN-']
    for installation_id in ids:
        for status in ('approved', 'pending'):
            counts.insert_one(documents.count_document(installation_id, status, 1))
    for installation_id in ids:
        found = counts.find(documents.installation_counts(installation_id))
        assert sorted(document['_id'] for document in found) == [
            documents.count_id(installation_id, 'approved'),
            documents.count_id(installation_id, 'pending')]
