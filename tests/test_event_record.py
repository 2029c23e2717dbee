from datetime import datetime, timezone

import pytest

from connect_mongodb_example.errors import InvalidRequest
from connect_mongodb_example.event_record import STORED_FIELDS, idempotency_key
from tests.support.records import NOT_SUMMARISED, purchase_record, summary

RECEIVED = datetime(2026, 11, 20, 10, 16, tzinfo=timezone.utc)
STORED = dict(STORED_FIELDS)
#: The fields the template takes from the request and the installation.
TEMPLATE_SOURCES = ('asset_id', 'product_id', 'installation_id', 'account_id')


def test_record_carries_every_field(purchase_request, installation):
    request = purchase_request(status='approved', updated='2026-11-21T08:00:00+00:00')
    record = purchase_record(request, installation=installation, received_at=RECEIVED)
    # The template's own fields; a fork's new ones are checked below by their declarations.
    assert {name: value for name, value in summary(record).items()
            if not STORED[name].source or name in TEMPLATE_SOURCES} == {
        'key': 'EIN-8436-7221-1234/PR-1234-5678-9012-001:approved:2026-11-21T08:00:00+00:00',
        'request_id': 'PR-1234-5678-9012-001',
        'status': 'approved',
        'updated': '2026-11-21T08:00:00+00:00',
        'event_type': 'asset_purchase_request_processing',
        'asset_id': 'AS-1234-5678-9012',
        'product_id': 'PRD-276-377-545',
        'installation_id': 'EIN-8436-7221-1234',
        'account_id': 'VA-000-001',
        'delivery_count': 1,
    }
    assert set(summary(record)) == set(STORED) - NOT_SUMMARISED
    # The fixtures' request and installation hold every value a field is declared to take.
    assert [name for name, stored in STORED.items()
            if stored.source and stored.source(request, installation) is None] == []
    assert {name: getattr(record, name) for name, stored in STORED.items() if stored.source} \
        == {name: stored.source(request, installation)
            for name, stored in STORED.items() if stored.source}
    assert record.received_at == record.last_received_at == RECEIVED
    assert record.request == request


def test_record_holds_a_copy_and_leaves_the_request_alone(purchase_request):
    request = purchase_request()
    record = purchase_record(request)
    record.request['asset']['items'].clear()
    assert request['asset']['items'], 'the handler input must never be modified'
    assert '_id' not in request


def test_without_installation_ids_are_empty(purchase_request):
    record = purchase_record(purchase_request())
    assert (record.installation_id, record.account_id) == (None, None)


def test_updated_falls_back_to_events_updated_at(purchase_request):
    request = purchase_request()
    del request['updated']
    assert purchase_record(request).updated == '2026-11-20T10:15:03+00:00'


def test_key_changes_with_status_update_time_and_installation():
    keys = {
        idempotency_key('PR-1', 'pending', 't1'),
        idempotency_key('PR-1', 'approved', 't1'),
        idempotency_key('PR-1', 'pending', 't2'),
        idempotency_key('PR-1', 'pending', 't1', 'EIN-1'),
        idempotency_key('PR-1', 'pending', 't1', 'EIN-2'),
    }
    assert len(keys) == 5
    assert idempotency_key('PR-1', 'pending', 't1', 'EIN-1') == 'EIN-1/PR-1:pending:t1'


@pytest.mark.parametrize(('request_', 'message'), [
    (['PR-1'], 'the request must be a JSON object, got list'),
    (None, 'the request must be a JSON object, got NoneType'),
    ({'status': 'pending'}, "the request has no 'id'"),
    ({'id': '', 'status': 'pending'}, "the request has no 'id'"),
    ({'id': 'PR-1'}, "request PR-1 has no 'status'"),
    ({'id': 'PR-1', 'status': 'draft'}, "request PR-1 has status 'draft', which this extension"),
    ({'id': 'PR-1', 'status': 'pending', 'bad': {1, 2}}, 'request PR-1 is not valid JSON'),
    ({'id': 'PR-1', 'status': 'pending', 'bad': float('nan')}, 'request PR-1 is not valid JSON'),
])
def test_invalid_requests_are_refused_with_a_clear_message(request_, message):
    with pytest.raises(InvalidRequest) as error:
        purchase_record(request_)
    assert str(error.value).startswith(message)


def test_a_request_without_any_update_time_is_refused(purchase_request):
    request = purchase_request()
    del request['updated']
    del request['events']
    with pytest.raises(InvalidRequest, match="request PR-1234-5678-9012-001 has no 'updated'"):
        purchase_record(request)


def test_a_lone_surrogate_is_refused_and_other_text_kept_as_is(purchase_request):
    with pytest.raises(InvalidRequest, match='request PR-1234-5678-9012-001 is not valid JSON'):
        purchase_record(purchase_request(note='\ud800'))
    record = purchase_record(purchase_request(note='Große Straße, 東京'))
    assert record.request['note'] == 'Große Straße, 東京'
    assert '"note":"Große Straße, 東京"' in record.request_json
