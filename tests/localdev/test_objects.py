"""RQL filtering of the emulated requests."""
import pytest

from localdev.connect_emulator.objects import ConnectObjects, FilterError


@pytest.fixture
def objects(purchase_request) -> ConnectObjects:
    found = ConnectObjects()
    found.put_request(purchase_request('PR-1', 'pending'))
    found.put_request(purchase_request('PR-2', 'approved'))
    found.put_request(purchase_request('PR-3', 'draft'))
    return found


@pytest.mark.parametrize(('rql', 'ids'), [
    ('', ['PR-1', 'PR-2', 'PR-3']),
    ('and(eq(id,PR-2),in(status,(pending,approved)))', ['PR-2']),
    ('and(eq(id,PR-3),in(status,(pending,approved)))', []),
    ('and(eq(id,PR-9),in(status,(pending,approved)))', []),
    ('eq(id,PR-1)', ['PR-1']),
    ('eq(id,"PR-1")', ['PR-1']),
    ('or(eq(id,PR-1),eq(id,PR-3))', ['PR-1', 'PR-3']),
    ('and(ne(status,draft),eq(asset.product.id,PRD-276-377-545))', ['PR-1', 'PR-2']),
    ('status=draft', ['PR-3']),
])
def test_filters_select_what_connect_would(objects, rql, ids):
    assert [request['id'] for request in objects.find_requests(rql)] == ids


def test_a_stored_request_is_a_copy(objects, purchase_request):
    request = purchase_request('PR-4', 'pending')
    objects.put_request(request)
    request['status'] = 'approved'

    assert objects.request('PR-4')['status'] == 'pending'


@pytest.mark.parametrize(('rql', 'reason'), [
    ('eq(colour,blue)', 'unknown field colour'),
    ('and(eq(id,PR-1)', 'Bad filter query'),
])
def test_filters_it_cannot_evaluate_say_why(objects, rql, reason):
    with pytest.raises(FilterError, match=reason) as caught:
        objects.find_requests(rql)

    assert 'the emulation filters requests on: id, type, status' in str(caught.value)
