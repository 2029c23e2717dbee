"""Event files: the shipped samples, the wrapper format and its error messages."""
import json
from collections import Counter

import pytest

from connect_mongodb_example.extension import PURCHASE_REQUEST
from localdev.connect_emulator import (
    Event,
    EventFileError,
    InstallationChange,
    ScheduleRun,
    load_events,
    load_items,
)
from localdev.connect_emulator.events import in_turns, item_from_document, load_requests
from localdev.demo import DEFAULT_EVENTS
from tests.support.records import purchase_record


def test_shipped_samples_cover_every_status_several_accounts_and_a_redelivery():
    events = load_events(DEFAULT_EVENTS)

    assert {event.status for event in events} == set(PURCHASE_REQUEST.statuses)
    assert len({event.account_id for event in events if event.installation}) >= 2
    assert any(event.installation is None for event in events)
    assert any(event.deliveries == 2 for event in events)
    # The extension can store every one of them, each under its own idempotency key.
    keys = Counter(
        purchase_record(event.request, installation=event.installation).key for event in events
    )
    assert max(keys.values()) == 1


def test_samples_are_delivered_in_file_name_order():
    events = load_events(DEFAULT_EVENTS)

    assert [event.source for event in events] == sorted(event.source for event in events)


def test_a_bare_request_is_an_event_without_installation(tmp_path, purchase_request):
    (tmp_path / 'one.json').write_text(json.dumps(purchase_request('PR-1', 'approved')))

    [event] = load_events(tmp_path)

    assert (event.request_id, event.status, event.installation, event.deliveries) == (
        'PR-1', 'approved', None, 1,
    )
    assert event.source == str(tmp_path / 'one.json')


def test_a_wrapper_carries_installation_and_deliveries(purchase_request, installation):
    event = Event.from_document({
        'installation': installation,
        'deliveries': 3,
        'request': purchase_request('PR-2', 'pending'),
    })

    assert event.installation_id == installation['id']
    assert event.account_id == installation['owner']['id']
    assert event.deliveries == 3


@pytest.mark.parametrize(('document', 'problem'), [
    ([], 'must hold a JSON object'),
    ({'status': 'pending'}, "non-empty string 'id'"),
    ({'id': 'PR-1', 'status': ''}, "non-empty string 'status'"),
    ({'request': {'id': 'PR-1', 'status': 'pending'}, 'instalation': {}},
     'unknown key(s) instalation'),
    ({'request': 'PR-1'}, '"request" must be a JSON object'),
    ({'request': {'id': 'PR-1', 'status': 'pending'}, 'installation': {'id': 'EIN-1'}},
     'needs an "owner"'),
    ({'request': {'id': 'PR-1', 'status': 'pending'}, 'installation': {'owner': {}}},
     'needs a string "id"'),
    ({'request': {'id': 'PR-1', 'status': 'pending'}, 'deliveries': 0}, 'between 1 and'),
    ({'request': {'id': 'PR-1', 'status': 'pending'}, 'deliveries': '2'}, 'whole number'),
])
def test_bad_documents_are_refused_naming_the_file_and_the_problem(document, problem):
    with pytest.raises(EventFileError) as caught:
        Event.from_document(document, source='demo/events/x.json')

    assert str(caught.value).startswith('demo/events/x.json: ')
    assert problem in str(caught.value)


def test_invalid_json_names_the_file(tmp_path):
    (tmp_path / 'broken.json').write_text('{"id": ')

    with pytest.raises(EventFileError, match=r'broken\.json: is not valid JSON'):
        load_events(tmp_path)


def test_a_folder_without_event_files_is_refused(tmp_path):
    (tmp_path / 'notes.txt').write_text('not an event')

    with pytest.raises(EventFileError, match=r'holds no \*\.json event file'):
        load_events(tmp_path)
    with pytest.raises(EventFileError, match='is not a folder'):
        load_events(tmp_path / 'missing')


def test_an_installation_status_change_names_the_installation_and_its_new_status(
    tmp_path, installation,
):
    (tmp_path / '09.json').write_text(json.dumps(
        {'installation_status': 'uninstalled', 'installation': installation, 'deliveries': 2}))

    [change] = load_items(tmp_path)

    assert isinstance(change, InstallationChange)
    assert (change.installation_id, change.status, change.account_id, change.deliveries) == (
        installation['id'], 'uninstalled', installation['owner']['id'], 2)
    assert load_events(tmp_path) == []  # purchase-request events only


def test_a_schedule_run_names_the_method_if_it_must_and_the_parameter(tmp_path):
    (tmp_path / '10.json').write_text(json.dumps({'schedule': {}}))
    (tmp_path / '11.json').write_text(json.dumps({'schedule': {
        'method': 'run_data_lifecycle', 'parameter': {'installation_id': 'EIN-1'}}}))

    every, one = load_items(tmp_path)

    assert (every.method, every.parameter, every.installation_id) == (None, {}, None)
    assert (one.method, one.parameter, one.installation_id) == (
        'run_data_lifecycle', {'installation_id': 'EIN-1'}, 'EIN-1')


@pytest.mark.parametrize(('document', 'problem'), [
    ({'installation_status': 'suspended', 'installation': {'id': 'EIN-1', 'owner': {'id': 'V'}}},
     '"installation_status" must be one of installed, uninstalled'),
    ({'installation_status': 'installed'}, 'needs the "installation" it is about'),
    ({'installation_status': 'installed', 'installation': {'id': 'EIN-1'}}, 'needs an "owner"'),
    ({'installation_status': 'installed', 'request': {}}, 'unknown key(s) request'),
    ({'schedule': [], 'x': 1}, 'holds only "schedule"'),
    ({'schedule': {'method': 'run it'}}, '"method" must name a method'),
    ({'schedule': {'parameter': 'EIN-1'}}, '"parameter" must be a JSON object'),
    ({'schedule': {'when': 'now'}}, 'unknown key(s) when'),
])
def test_bad_status_changes_and_schedule_runs_are_refused_naming_the_problem(document, problem):
    with pytest.raises(EventFileError) as caught:
        item_from_document(document, source='demo/events/x.json')

    assert str(caught.value).startswith('demo/events/x.json: ')
    assert problem in str(caught.value)


def test_a_status_change_or_a_schedule_run_is_a_turn_of_its_own(purchase_request, installation):
    first, second, third = (Event(purchase_request(f'PR-{n}')) for n in range(3))
    uninstall = InstallationChange(installation, 'uninstalled')
    job = ScheduleRun()

    assert in_turns([first, second, uninstall, job, third]) == [
        [first, second], [uninstall], [job], [third]]


def test_history_folders_hold_purchase_requests_only(tmp_path, purchase_request, installation):
    assert load_requests(tmp_path / 'missing') == []
    (tmp_path / '01.json').write_text(json.dumps(purchase_request('PR-1')))
    (tmp_path / '02.json').write_text(json.dumps(
        {'installation_status': 'installed', 'installation': installation}))

    with pytest.raises(EventFileError, match=r'02\.json: only purchase-request events'):
        load_requests(tmp_path)
