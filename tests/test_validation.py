"""connect-eaas-core's own project validators, run offline as `ccli project validate` would."""
import json
from pathlib import Path
from typing import Any, Dict, List

import pytest
import toml
from connect.eaas.core.constants import MODULE_PAGES_ATTR_NAME, VARIABLES_INFO_ATTR_NAME
from connect.eaas.core.validation.models import ValidationItem
from connect.eaas.core.validation.validators import get_validators

from connect_mongodb_example import extension, webapp

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The runner image the validators expect is the one the project pins as a dev dependency.
RUNNER_VERSION = toml.load(PROJECT_DIR / 'pyproject.toml')['tool']['poetry']['group']['dev'][
    'dependencies']['connect-extension-runner']
# What Connect's event-definitions endpoint says of this event type (it needs an account).
EVENT_DEFINITIONS = {
    'asset_purchase_request_processing': {
        'type': 'asset_purchase_request_processing',
        'group': 'Fulfillment',
        'name': 'Process purchase requests',
        'category': 'background',
        'object_statuses': [
            'draft', 'tiers_setup', 'pending', 'inquiring', 'approved', 'failed',
            'scheduled', 'revoking', 'revoked',
        ],
    },
    # The object is the installation itself (what the runner passes to the handler).
    'installation_status_change': {
        'type': 'installation_status_change',
        'group': 'Extensions',
        'name': 'Installation status change',
        'category': 'background',
        'object_statuses': ['installed', 'uninstalled'],
    },
}


def validate(project_dir: Path) -> List[ValidationItem]:
    context: Dict[str, Any] = {
        'project_dir': str(project_dir),
        'event_definitions': EVENT_DEFINITIONS,
        'runner_version': RUNNER_VERSION,
    }
    items: List[ValidationItem] = []
    for validator in get_validators():
        result = validator(context)
        items.extend(result.items)
        if result.must_exit:
            break
        context.update(result.context or {})
    assert 'extension_classes' in context, 'the validators did not load the extension'
    return items


def test_project_passes_the_eaas_core_validators():
    errors = [item for item in validate(PROJECT_DIR) if item.level == 'ERROR']
    assert errors == []


def test_the_installation_event_and_the_schedulable_are_declared():
    events = {declared['event_type']: declared
              for declared in extension.StatefulEventsApplication.get_events()}
    assert events['installation_status_change'] == {
        'method': 'handle_installation_status_change',
        'event_type': 'installation_status_change',
        'statuses': ['installed', 'uninstalled'],
    }
    [schedulable] = extension.StatefulEventsApplication.get_schedulables()
    assert schedulable['method'] == 'run_data_lifecycle'
    assert schedulable['name'] == 'Data lifecycle'
    assert 'installation_id' in schedulable['description']


def test_validators_catch_an_event_connect_does_not_define(monkeypatch):
    """A control: without Connect's definition of the installation event, its declaration
    is an ERROR, so the run above did check it against the definition."""
    monkeypatch.delitem(EVENT_DEFINITIONS, 'installation_status_change')
    errors = [item.message for item in validate(PROJECT_DIR) if item.level == 'ERROR']
    assert errors == ['The event type *installation_status_change* is not valid.']


def test_validators_catch_a_schedulable_with_a_bad_signature(monkeypatch):
    """A control: the schedulable's signature is checked."""
    async def run_data_lifecycle(self):  # the schedule argument is missing
        return None

    run_data_lifecycle.__dict__.update(
        extension.StatefulEventsApplication.run_data_lifecycle.__dict__)
    monkeypatch.setattr(extension.StatefulEventsApplication, 'run_data_lifecycle',
                        run_data_lifecycle)
    errors = [item.message for item in validate(PROJECT_DIR) if item.level == 'ERROR']
    assert any('run_data_lifecycle' in message and 'invalid signature' in message
               for message in errors), errors


def test_validators_catch_a_bad_variable_declaration(monkeypatch):
    """A control: the same run reports ERRORs once a declaration is broken."""
    declared = extension.StatefulEventsApplication.get_variables()
    broken = [*declared, {'name': declared[0]['name'], 'initial_value': 1}]
    monkeypatch.setattr(extension.StatefulEventsApplication, VARIABLES_INFO_ATTR_NAME, broken)
    errors = [item.message for item in validate(PROJECT_DIR) if item.level == 'ERROR']
    assert any('Duplicate variable name' in message for message in errors), errors
    assert any('Invalid *initial_value*' in message for message in errors), errors


@pytest.mark.parametrize('name', ['readme_url', 'changelog_url'])
def test_extension_json_has_the_urls_the_runner_needs(name):
    descriptor_file = PROJECT_DIR / 'connect_mongodb_example' / 'extension.json'
    descriptor = json.loads(descriptor_file.read_text())
    assert descriptor[name].startswith('https://')


def test_the_web_application_is_declared_and_validated():
    context: Dict[str, Any] = {'project_dir': str(PROJECT_DIR)}
    result = get_validators()[0](context)  # pyproject.toml: loads the declared applications
    classes = result.context['extension_classes']
    assert classes['webapp'] is webapp.EventsWebApplication
    assert classes['eventsapp'] is extension.StatefulEventsApplication
    assert webapp.EventsWebApplication.get_ui_modules() == {
        'modules': {'label': 'Events', 'url': '/static/index.html'}}
    # Both applications read the same variables, so both declare them.
    assert webapp.EventsWebApplication.get_variables() == \
        extension.StatefulEventsApplication.get_variables()


def test_validators_catch_a_module_page_that_is_not_there(monkeypatch):
    """A control: the web application's checks do run (a page must exist under static/)."""
    monkeypatch.setattr(webapp.EventsWebApplication, MODULE_PAGES_ATTR_NAME,
                        {'label': 'Events', 'url': '/static/missing.html'})
    errors = [item.message for item in validate(PROJECT_DIR) if item.level == 'ERROR']
    assert any('/static/missing.html' in message for message in errors), errors
