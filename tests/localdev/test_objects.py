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


def test_each_status_change_sets_the_status_and_its_time_after_the_last_one(installation):
    objects = ConnectObjects()
    objects.put_installation(installation)

    installed = objects.change_installation_status(installation, 'installed')
    uninstalled = objects.change_installation_status({'id': installation['id']}, 'uninstalled')
    again = objects.change_installation_status({'id': installation['id']}, 'installed')

    assert (uninstalled['status'], uninstalled['owner']) == ('uninstalled', installation['owner'])
    assert uninstalled['events']['installed'] == installed['events']['installed']
    times = [installed['events']['installed']['at'], uninstalled['events']['uninstalled']['at'],
             again['events']['installed']['at']]
    assert times == sorted(times)
    assert len(set(times)) == 3  # each later, even within a second
    assert again['events']['updated']['at'] == times[-1]
    assert objects.installation(installation['id']) == again


def test_an_event_file_naming_an_installation_keeps_its_changed_status(installation):
    objects = ConnectObjects()
    objects.put_installation(dict(installation, status='installed'))
    changed = objects.change_installation_status(installation, 'uninstalled')

    objects.put_installation(dict(installation, status='installed', settings={'x': 1}))

    kept = objects.installation(installation['id'])
    assert (kept['status'], kept['events'], kept['settings']) == (
        'uninstalled', changed['events'], {'x': 1})


@pytest.mark.parametrize(('rql', 'ids'), [
    ('and(eq(id,EIN-1),in(status,(installed,uninstalled)))', ['EIN-1']),
    ('and(eq(id,EIN-2),in(status,(installed)))', []),
    ('eq(owner.id,VA-1)', ['EIN-1', 'EIN-2']),
])
def test_installations_are_filtered_as_the_runner_counts_them(rql, ids):
    objects = ConnectObjects()
    for number in (1, 2):
        installation = {'id': f'EIN-{number}', 'owner': {'id': 'VA-1'}}
        objects.put_installation(installation)
        objects.change_installation_status(
            installation, 'installed' if number == 1 else 'uninstalled')

    assert [item['id'] for item in objects.find_installations(rql)] == ids
