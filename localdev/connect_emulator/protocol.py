"""The EaaS websocket protocol, version 2, built on the runner's own pydantic models.

Using `connect.eaas.core.proto` for both directions means a message the runner would reject
is rejected here first, with the same validation.
"""
import json
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from connect.eaas.core.enums import EventType, TaskCategory
from connect.eaas.core.proto import (
    EventDefinition,
    Logging,
    LogMeta,
    Message,
    MessageType,
    SetupRequest,
    SetupResponse,
    Task,
    TaskInput,
    TaskOptions,
)
from pydantic import ValidationError

PROTOCOL_VERSION = 2
PURCHASE_REQUEST_EVENT = EventType.ASSET_PURCHASE_REQUEST_PROCESSING
INSTALLATION_STATUS_EVENT = 'installation_status_change'
SCHEDULED_EXECUTION = EventType.SCHEDULED_EXECUTION
#: Task categories: which of its managers the runner's events worker hands a task to.
BACKGROUND = TaskCategory.BACKGROUND
SCHEDULED = TaskCategory.SCHEDULED

#: The object filter of each event: the runner fills in ${_object_id_} and ${_statuses_}
#: (the statuses the extension subscribed to) and counts the matches: none means the
#: status is not handled, and it answers `skip` by itself.
OBJECT_IN_STATUSES = 'and(eq(id,${_object_id_}),in(status,${_statuses_}))'

#: How Connect tells the runner where the object of an event lives.
PURCHASE_REQUEST_DEFINITION = EventDefinition(
    event_type=PURCHASE_REQUEST_EVENT,
    api_collection_endpoint='requests',
    api_resource_endpoint='requests/{pk}',
    api_collection_filter=OBJECT_IN_STATUSES,
)
#: The object of an installation status change is the installation itself.
INSTALLATION_STATUS_DEFINITION = EventDefinition(
    event_type=INSTALLATION_STATUS_EVENT,
    api_collection_endpoint='devops/installations',
    api_resource_endpoint='devops/installations/{pk}',
    api_collection_filter=OBJECT_IN_STATUSES,
)
#: The events the emulation delivers, with the statuses their objects can be in (what
#: `devops/event-definitions` lists as `object_statuses`).
EVENT_DEFINITIONS: Tuple[Tuple[EventDefinition, Tuple[str, ...]], ...] = (
    (PURCHASE_REQUEST_DEFINITION, (
        'draft', 'tiers_setup', 'pending', 'inquiring', 'failed', 'approved', 'scheduled',
        'revoking', 'revoked',
    )),
    (INSTALLATION_STATUS_DEFINITION, ('installed', 'uninstalled')),
)


class ProtocolError(ValueError):
    """A message from the runner that does not follow the protocol."""


@dataclass(frozen=True)
class Account:
    """The account that owns the extension (what Connect puts in the logging metadata)."""

    id: str = 'VA-000-000'
    name: str = 'Local Extension Owner'


@dataclass(frozen=True)
class TaskResult:
    """What the runner answered for one task."""

    task_id: str
    object_id: str
    installation_id: Optional[str]
    result: str
    message: Optional[str] = None
    countdown: int = 0
    runtime: float = 0.0
    #: The runner instance (INSTANCE_ID) that answered.
    instance_id: Optional[str] = None

    @classmethod
    def from_task(cls, task: Task, instance_id: Optional[str] = None) -> 'TaskResult':
        output = task.output
        if output is None:
            raise ProtocolError(f'task {task.options.task_id} came back without an output')
        return cls(
            task_id=task.options.task_id,
            object_id=task.input.object_id,
            installation_id=task.options.installation_id,
            result=output.result,
            message=output.message,
            countdown=output.countdown,
            runtime=output.runtime,
            instance_id=instance_id,
        )


def parse_message(raw: str) -> Message:
    """Decode one websocket text frame from the runner."""
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise ProtocolError(f'not JSON: {error}') from None
    if not isinstance(document, dict) or 'message_type' not in document:
        raise ProtocolError('a message must be a JSON object with a message_type')
    if document.get('version') != PROTOCOL_VERSION:
        raise ProtocolError(
            f'protocol version {document.get("version")!r} is not emulated; '
            f'only version {PROTOCOL_VERSION} is',
        )
    try:
        return Message.deserialize(document)
    except (ValidationError, KeyError, TypeError) as error:
        raise ProtocolError(f'invalid {document["message_type"]!r} message: {error}') from None


def effective_variables(
    declared: Optional[Iterable[Mapping[str, Any]]],
    overrides: Mapping[str, str],
) -> List[Dict[str, Any]]:
    """The variables Connect would send: each declared one with its initial value, unless
    the local file sets it; variables only the file names are added as not secure."""
    variables: Dict[str, Dict[str, Any]] = {}
    for item in declared or ():
        variables[item['name']] = {
            'name': item['name'],
            'value': str(item.get('initial_value') or ''),
            'secure': bool(item.get('secure')),
        }
    for name, value in overrides.items():
        entry = variables.setdefault(name, {'name': name, 'value': '', 'secure': False})
        entry['value'] = value
    return list(variables.values())


def variable_values(
    declared: Optional[Iterable[Mapping[str, Any]]],
    overrides: Mapping[str, str],
) -> Dict[str, str]:
    """NAME: value of the variables Connect would send (see `effective_variables`)."""
    return {item['name']: item['value'] for item in effective_variables(declared, overrides)}


def setup_response(
    setup: SetupRequest,
    *,
    overrides: Mapping[str, str],
    account: Account,
    service_id: str,
    environment_type: str = 'development',
    log_level: str = 'INFO',
) -> Dict[str, Any]:
    """The answer to a runner's `setup_request`."""
    message = Message(
        version=PROTOCOL_VERSION,
        message_type=MessageType.SETUP_RESPONSE,
        data=SetupResponse(
            variables=effective_variables(setup.variables, overrides),
            environment_type=environment_type,
            logging=Logging(
                # No logging_api_key: the runner would ship the extension's logs to logz.io.
                log_level=log_level,
                runner_log_level=log_level,
                meta=LogMeta(
                    account_id=account.id,
                    account_name=account.name,
                    service_id=service_id,
                ),
            ),
            event_definitions=[definition for definition, _ in EVENT_DEFINITIONS],
            environment_runtime='local',
        ),
    )
    return message.dict()


def task_message(
    *,
    task_id: str,
    object_id: str,
    event_type: str = PURCHASE_REQUEST_EVENT,
    installation_id: Optional[str] = None,
    api_key: Optional[str] = None,
    task_category: str = BACKGROUND,
) -> Dict[str, Any]:
    """A task: 'process the event about this object' (background), or 'run the method of
    this schedule' (scheduled, event type scheduled_execution, the schedule's id)."""
    message = Message(
        version=PROTOCOL_VERSION,
        message_type=MessageType.TASK,
        data=Task(
            options=TaskOptions(
                task_id=task_id,
                task_category=task_category,
                installation_id=installation_id,
                api_key=api_key,
            ),
            input=TaskInput(event_type=event_type, object_id=object_id),
        ),
    )
    return message.dict()
