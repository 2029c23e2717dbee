"""The emulated REST API, called by the runner's own task manager and by a plain client."""
import asyncio
import json

import pytest
from connect.client import ClientError
from connect.eaas.core.proto import Task, TaskInput, TaskOptions
from connect.eaas.runner.config import ConfigHelper
from connect.eaas.runner.handlers.events import EventsApp
from connect.eaas.runner.managers import BackgroundTasksManager, ScheduledTasksManager

from localdev.connect_emulator.protocol import setup_response
from localdev.runner_process import PROXY_VARIABLES
from tests.localdev.test_protocol import extension_setup_request, over_the_wire
from tests.support.recording_extension import RecordingEventsApplication


@pytest.fixture
def runner_manager(emulator, monkeypatch):
    """The runner's background task manager, configured as after a real handshake."""
    return _manager(emulator, monkeypatch, BackgroundTasksManager)


@pytest.fixture
def lifecycle_manager(emulator, monkeypatch):
    """The runner's manager of `manager_class` tasks (background by default), for an
    extension that subscribes to installation status changes and declares a schedulable."""
    monkeypatch.setattr(EventsApp, 'get_application', lambda self: RecordingEventsApplication)
    return lambda manager_class=BackgroundTasksManager: _manager(
        emulator, monkeypatch, manager_class)


def _manager(emulator, monkeypatch, manager_class):
    for name in PROXY_VARIABLES:  # the Connect client (httpx) would send loopback calls there
        monkeypatch.delenv(name, raising=False)
    for name, value in emulator.runner_environment().items():
        monkeypatch.setenv(name, value)
    # The Connect client builds its TLS context once, at import: trust the test CA there.
    monkeypatch.setattr(
        'connect.client.fluent._SSL_CONTEXT', emulator.certificates.client_context(),
    )
    config = ConfigHelper(secure=True)
    config.update_dynamic_config(over_the_wire(setup_response(
        extension_setup_request(), overrides={}, account=emulator.account,
        service_id=emulator.service_id,
    )).data)
    results = []

    async def enqueue(result):
        results.append(result)

    manager = manager_class(config, EventsApp(config), enqueue)
    manager.results = results
    return manager


def task(request_id, installation_id=None, api_key=None) -> Task:
    return Task(
        options=TaskOptions(task_id='TQ-1', task_category='background',
                            installation_id=installation_id, api_key=api_key),
        input=TaskInput(event_type='asset_purchase_request_processing', object_id=request_id),
    )


async def test_the_runner_reads_the_request_and_installation_of_a_task(
    emulator, runner_manager, purchase_request, installation,
):
    request = purchase_request('PR-1', 'approved')
    emulator.objects.put_request(request)
    emulator.objects.put_installation(installation)
    the_task = task('PR-1', installation['id'], api_key='ApiKey SU-9:installation')

    assert await runner_manager.get_argument(the_task) == request
    assert await runner_manager.get_installation(the_task) == installation
    assert [(call.path, call.status) for call in emulator.api.calls] == [
        ('/public/v1/requests', 200),
        ('/public/v1/requests/PR-1', 200),
        (f'/public/v1/devops/services/{emulator.service_id}/installations/{installation["id"]}',
         200),
    ]
    assert 'in(status,(pending,approved,' in emulator.api.calls[0].query


async def test_the_runner_skips_a_request_in_a_status_it_did_not_subscribe_to(
    emulator, runner_manager, purchase_request,
):
    emulator.objects.put_request(purchase_request('PR-2', 'draft'))

    assert await runner_manager.get_argument(task('PR-2')) is None

    for _ in range(100):  # the skip result is queued by a task of its own
        if runner_manager.results:
            break
        await asyncio.sleep(0.01)
    [result] = runner_manager.results
    assert result.output.result == 'skip'


async def test_count_answers_in_content_range_and_pages_follow_limit_and_offset(
    emulator, api, purchase_request,
):
    for number in range(3):
        emulator.objects.put_request(purchase_request(f'PR-{number}', 'pending'))

    count = await api.get('/requests?in(status,(pending,approved))&limit=0')
    page = await api.get('/requests', params={'limit': 2, 'offset': 1})

    assert (count.status_code, count.headers['Content-Range'], count.json()) == (
        200, 'items 0-0/3', [],
    )
    assert page.headers['Content-Range'] == 'items 1-2/3'
    assert [item['id'] for item in page.json()] == ['PR-1', 'PR-2']


async def test_unknown_objects_and_bad_filters_get_connect_errors(emulator, api):
    missing = await api.get('/requests/PR-404')
    bad_field = await api.get('/requests?eq(colour,blue)')
    bad_syntax = await api.get('/requests?and(eq(id,')
    installation = await api.get(
        f'/devops/services/{emulator.service_id}/installations/EIN-404',
    )

    assert (missing.status_code, missing.json()['error_code']) == (404, 'REQ_NOT_FOUND')
    assert bad_field.status_code == 400
    assert 'unknown field colour' in bad_field.json()['errors'][0]
    assert bad_syntax.status_code == 400
    assert installation.status_code == 404


async def test_calls_that_are_not_emulated_are_404_and_recorded(emulator, api):
    response = await api.post('/subscriptions/assets', content=json.dumps({}))

    assert response.status_code == 404
    assert 'is not emulated' in response.json()['errors'][0]
    assert [(call.method, call.path) for call in emulator.unknown_calls] == [
        ('POST', '/public/v1/subscriptions/assets'),
    ]


async def test_calls_without_an_api_key_are_refused(emulator, api):
    response = await api.get('/requests', headers={'Authorization': ''})

    assert response.status_code == 401



async def test_the_runner_reads_an_installation_status_change_from_the_installation(
    emulator, lifecycle_manager, installation,
):
    emulator.objects.put_installation(installation)
    uninstalled = emulator.objects.change_installation_status(installation, 'uninstalled')
    the_task = Task(
        options=TaskOptions(task_id='TQ-2', task_category='background',
                            installation_id=installation['id'], api_key='ApiKey SU-9:inst'),
        input=TaskInput(event_type='installation_status_change', object_id=installation['id']),
    )
    manager = lifecycle_manager()

    assert await manager.get_argument(the_task) == uninstalled
    assert await manager.get_installation(the_task) == uninstalled
    count = emulator.api.calls[0]
    assert (count.path, count.status) == ('/public/v1/devops/installations', 200)
    assert f'eq(id,{installation["id"]})' in count.query
    assert 'in(status,(installed,uninstalled))' in count.query


async def test_the_runner_reads_the_schedule_of_a_scheduled_task(emulator, lifecycle_manager):
    schedule = {'id': 'EFS-1', 'method': 'run_data_lifecycle', 'parameter': {}}
    emulator.objects.put_schedule(schedule)
    manager = lifecycle_manager(ScheduledTasksManager)
    the_task = Task(
        options=TaskOptions(task_id='TQ-3', task_category='scheduled'),
        input=TaskInput(event_type='scheduled_execution', object_id='EFS-1'),
    )

    assert await manager.get_argument(the_task) == schedule
    assert manager.get_method_name(the_task, schedule) == 'run_data_lifecycle'
    missing = Task(options=TaskOptions(task_id='TQ-4', task_category='scheduled'),
                   input=TaskInput(event_type='scheduled_execution', object_id='EFS-404'))
    with pytest.raises(ClientError):
        await manager.get_argument(missing)
    assert emulator.api.calls[-1].status == 404


async def test_event_definitions_list_both_events_with_their_object_statuses(api):
    response = await api.get('/devops/event-definitions')

    definitions = {item['type']: item for item in response.json()}
    assert definitions['installation_status_change']['object_statuses'] == [
        'installed', 'uninstalled']
    assert definitions['installation_status_change']['api_resource_endpoint'] == (
        'devops/installations/{pk}')
    assert 'pending' in definitions['asset_purchase_request_processing']['object_statuses']
