"""Protocol messages, checked by the runner's own models and configuration code."""
import json
from string import Template

import pytest
from connect.eaas.core.proto import Message, MessageType, SetupRequest
from connect.eaas.runner.config import ConfigHelper

from connect_mongodb_example.extension import StatefulEventsApplication
from localdev.connect_emulator.objects import ConnectObjects
from localdev.connect_emulator.protocol import (
    PURCHASE_REQUEST_DEFINITION,
    Account,
    ProtocolError,
    TaskResult,
    effective_variables,
    parse_message,
    setup_response,
    task_message,
    variable_values,
)


def extension_setup_request() -> SetupRequest:
    """What the runner's events worker sends for this extension (workers/events.py)."""
    return SetupRequest(
        event_subscriptions={
            event['event_type']: event['statuses']
            for event in StatefulEventsApplication.get_events()
        },
        variables=StatefulEventsApplication.get_variables(),
        runner_version='43.1',
    )


def over_the_wire(message: dict) -> Message:
    """Serialised and parsed the way the runner's worker does it."""
    return Message.deserialize(json.loads(json.dumps(message)))


@pytest.fixture
def runner_config(monkeypatch) -> ConfigHelper:
    for name, value in {
        'API_KEY': 'ApiKey SU-000:test', 'ENVIRONMENT_ID': 'ENV-1234-5678-01',
        'INSTANCE_ID': 'test-instance', 'SERVER_ADDRESS': '127.0.0.1:1',
    }.items():
        monkeypatch.setenv(name, value)
    return ConfigHelper(secure=True)


def test_the_runner_takes_the_setup_response_as_its_configuration(runner_config):
    response = setup_response(
        extension_setup_request(),
        overrides={'DATABASE_URL': 'sqlite:////tmp/x.sqlite3', 'EXTRA': 'yes'},
        account=Account('VA-111-222', 'Vendor'),
        service_id='SRVC-1234-5678',
    )
    message = over_the_wire(response)
    assert message.message_type == MessageType.SETUP_RESPONSE

    runner_config.update_dynamic_config(message.data)

    variables = runner_config.variables
    assert variables['DATABASE_URL'] == 'sqlite:////tmp/x.sqlite3'
    assert variables['EXTRA'] == 'yes'
    assert variables['STORAGE_BACKENDS'] == 'sql'  # the declared initial value
    assert (runner_config.service_id, runner_config.account_id) == ('SRVC-1234-5678', 'VA-111-222')
    assert runner_config.environment_type == 'development'
    assert runner_config.logging_api_key is None  # nothing is shipped to a log service
    definition = runner_config.event_definitions['asset_purchase_request_processing']
    assert (definition.api_collection_endpoint, definition.api_resource_endpoint) == (
        'requests', 'requests/{pk}',
    )


def test_declared_secure_flags_are_kept_and_file_values_win():
    declared = [
        {'name': 'DATABASE_URL', 'initial_value': 'sqlite:///data/e.sqlite3', 'secure': True},
        {'name': 'STORAGE_BACKENDS', 'initial_value': 'sql', 'secure': False},
    ]

    variables = effective_variables(declared, {'DATABASE_URL': 'postgresql://h/db', 'NEW': '1'})

    assert variables == [
        {'name': 'DATABASE_URL', 'value': 'postgresql://h/db', 'secure': True},
        {'name': 'STORAGE_BACKENDS', 'value': 'sql', 'secure': False},
        {'name': 'NEW', 'value': '1', 'secure': False},
    ]
    assert variable_values(declared, {'DATABASE_URL': 'postgresql://h/db', 'NEW': '1'}) == {
        'DATABASE_URL': 'postgresql://h/db', 'STORAGE_BACKENDS': 'sql', 'NEW': '1',
    }


def test_the_collection_filter_matches_only_subscribed_statuses(purchase_request):
    """The runner fills the template like this (managers/base.py) and skips on 0 matches."""
    statuses = StatefulEventsApplication.get_events()[0]['statuses']
    objects = ConnectObjects()
    objects.put_request(purchase_request('PR-1', 'approved'))
    objects.put_request(purchase_request('PR-2', 'draft'))

    def count(request_id: str) -> int:
        rql = Template(PURCHASE_REQUEST_DEFINITION.api_collection_filter).substitute(
            _object_id_=request_id, _statuses_=f'({",".join(statuses)})',
        )
        return len(objects.find_requests(rql))

    assert (count('PR-1'), count('PR-2'), count('PR-3')) == (1, 0, 0)


def test_a_task_is_a_background_task_the_runner_can_read():
    message = over_the_wire(task_message(
        task_id='TQ-1', object_id='PR-1', installation_id='EIN-1', api_key='ApiKey SU-1:k',
    ))

    task = message.data
    assert message.message_type == MessageType.TASK
    assert (task.options.task_id, task.options.task_category) == ('TQ-1', 'background')
    assert (task.options.installation_id, task.options.api_key) == ('EIN-1', 'ApiKey SU-1:k')
    assert (task.input.event_type, task.input.object_id) == (
        'asset_purchase_request_processing', 'PR-1',
    )


def test_a_result_from_the_runner_is_read_back():
    sent = task_message(task_id='TQ-7', object_id='PR-1', installation_id='EIN-1')
    sent['data']['output'] = {'result': 'reschedule', 'countdown': 30, 'runtime': None,
                              'message': None, 'data': None}

    result = TaskResult.from_task(parse_message(json.dumps(sent)).data)

    assert result == TaskResult(
        task_id='TQ-7', object_id='PR-1', installation_id='EIN-1', result='reschedule',
        countdown=30, runtime=0.0,
    )


@pytest.mark.parametrize(('raw', 'problem'), [
    ('not json', 'not JSON'),
    ('[1]', 'must be a JSON object with a message_type'),
    ('{"message_type": "capabilities", "data": {}}', 'only version 2'),
    ('{"version": 2, "message_type": "task", "data": {"model_type": "task"}}',
     "invalid 'task' message"),
])
def test_malformed_messages_are_reported(raw, problem):
    with pytest.raises(ProtocolError, match=problem):
        parse_message(raw)


def test_a_result_without_output_is_a_protocol_error():
    task = parse_message(json.dumps(task_message(task_id='TQ-1', object_id='PR-1'))).data

    with pytest.raises(ProtocolError, match='without an output'):
        TaskResult.from_task(task)
