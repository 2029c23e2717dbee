"""The emulation as one object: a TLS server on 127.0.0.1 and the deliveries it makes.

    async with ConnectEmulator(variables={'DATABASE_URL': ...}) as emulator:
        start the runner with emulator.runner_environment()
        await emulator.wait_ready()
        deliveries = await emulator.deliver_all(events)
"""
import asyncio
import itertools
import json
import logging
import socket
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

from aiohttp import web
from connect.eaas.core.proto import Schedulable, SetupRequest

from localdev.connect_emulator.certificates import LocalCertificates, create_certificates
from localdev.connect_emulator.dispatch import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_TASK_TIMEOUT,
    WorkerPool,
)
from localdev.connect_emulator.events import (
    Event,
    InstallationChange,
    Item,
    ScheduleRun,
    in_turns,
)
from localdev.connect_emulator.latency import ApiLatency
from localdev.connect_emulator.objects import ConnectObjects
from localdev.connect_emulator.protocol import (
    BACKGROUND,
    INSTALLATION_STATUS_EVENT,
    PURCHASE_REQUEST_EVENT,
    SCHEDULED,
    SCHEDULED_EXECUTION,
    Account,
    TaskResult,
    setup_response,
    task_message,
    variable_values,
)
from localdev.connect_emulator.rest import ApiCall, RestApi, require_api_key
from localdev.connect_emulator.schedules import Schedules, schedulable_of
from localdev.connect_emulator.websocket import RunnerChannel
from localdev.connect_emulator.webtasks import WebAppChannel, installation_api_key

logger = logging.getLogger(__name__)

LOOPBACK = '127.0.0.1'
DEFAULT_ENVIRONMENT_ID = 'ENV-0000-0000-01'
#: The key the runner presents; Connect would issue one per extension environment.
RUNNER_API_KEY = 'ApiKey SU-000-000-000:local-emulation'
#: The wait for a scheduled task's result before it is sent again. The runner allows one
#: 12 hours (SCHEDULED_TASK_MAX_EXECUTION_TIME); a job is expected to take far longer than
#: an event, and must not be run twice at once because it did.
SCHEDULED_TASK_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Delivery:
    """One event file's item (an event, an installation status change, a schedule run) and
    what the runner answered each time its task was delivered.

    `served` is the object the runner was served for it, as it was then (the installation
    after its change, the schedule); `not_sent` says why no task was sent (the extension
    does not subscribe to the event, or declares nothing to schedule), as Connect would not
    send one either."""

    event: Item
    results: List[TaskResult]
    served: Optional[Dict[str, Any]] = None
    not_sent: Optional[str] = None


def service_id_for(environment_id: str) -> str:
    """The extension id Connect derives from an environment id: ENV-1234-5678-01 is an
    environment of SRVC-1234-5678 (the runner relies on the same rule)."""
    if not environment_id.startswith('ENV-') or len(environment_id) < 8:
        raise ValueError(f'environment id {environment_id!r} must look like ENV-1234-5678-01')
    return f'SRVC-{environment_id[4:-3]}'


class ConnectEmulator:
    def __init__(
        self,
        *,
        variables: Optional[Mapping[str, str]] = None,
        environment_id: str = DEFAULT_ENVIRONMENT_ID,
        account: Optional[Account] = None,
        log_level: str = 'INFO',
        api_latency: float = 0.0,
        task_timeout: float = DEFAULT_TASK_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ):
        self.variables: Dict[str, str] = dict(variables or {})
        self.environment_id = environment_id
        self.service_id = service_id_for(environment_id)
        self.account = account or Account()
        self.log_level = log_level
        self.objects = ConnectObjects()
        self.api = RestApi(
            self.objects, service_id=self.service_id, environment_id=environment_id,
        )
        #: The delay of every REST call; `latency.seconds` may be changed at any time.
        self.latency = ApiLatency(api_latency)
        self.channel = RunnerChannel(
            environment_id=environment_id, respond_to_setup=self._setup_response,
            workers=WorkerPool(task_timeout=task_timeout, max_in_flight=max_in_flight),
        )
        #: Where the runner's web worker takes the browser calls (see portal.py).
        self.web = WebAppChannel(
            environment_id=environment_id, respond_to_setup=self._setup_response,
        )
        #: Every event delivered so far, once all of its deliveries were answered.
        self.deliveries: List[Delivery] = []
        self._task_numbers = itertools.count(1)
        self._run_id = uuid.uuid4().hex[:8]
        #: The schedules of the extension's schedulable methods, made as they are run.
        self.schedules = Schedules(
            self.objects, service_id=self.service_id, environment_id=environment_id,
            id_prefix=f'EFS-{self._run_id}',
        )
        self._directory: Optional[tempfile.TemporaryDirectory] = None
        self._certificates: Optional[LocalCertificates] = None
        self._runner: Optional[web.AppRunner] = None
        self._port: Optional[int] = None

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix='connect-emulator-')
        self._certificates = create_certificates(Path(self._directory.name))
        app = web.Application(middlewares=[self.latency.middleware, require_api_key])
        app.add_routes([self.channel.route(), self.web.route(), *self.api.routes()])
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        # Bind the socket ourselves: port 0 picks a free port, with no window for a clash.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((LOOPBACK, 0))
        self._port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock, ssl_context=self._certificates.server_context)
        await site.start()
        logger.info('Connect emulation listening on https://%s', self.address)

    async def close(self) -> None:
        await self.channel.close()
        await self.web.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    async def __aenter__(self) -> 'ConnectEmulator':
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- what the runner needs --------------------------------------------------------------

    @property
    def address(self) -> str:
        if self._port is None:
            raise RuntimeError('the emulation is not started')
        return f'{LOOPBACK}:{self._port}'

    @property
    def ca_file(self) -> Path:
        if self._certificates is None:
            raise RuntimeError('the emulation is not started')
        return self._certificates.ca_file

    @property
    def certificates(self) -> LocalCertificates:
        if self._certificates is None:
            raise RuntimeError('the emulation is not started')
        return self._certificates

    def runner_environment(self, instance: Optional[str] = None) -> Dict[str, str]:
        """The environment variables that point a runner at this emulation; runners started
        at the same time need each their own `instance` (Connect's INSTANCE_ID)."""
        ca_file = str(self.ca_file)
        return {
            'API_KEY': RUNNER_API_KEY,
            'ENVIRONMENT_ID': self.environment_id,
            'INSTANCE_ID': f'local-{self._run_id}' + (f'-{instance}' if instance else ''),
            'SERVER_ADDRESS': self.address,
            'API_ADDRESS': self.address,
            # websockets (ssl module) and httpx read SSL_CERT_FILE, requests its own variable.
            'SSL_CERT_FILE': ca_file,
            'REQUESTS_CA_BUNDLE': ca_file,
        }

    def _setup_response(self, setup: SetupRequest) -> dict:
        return setup_response(
            setup,
            overrides=self.variables,
            account=self.account,
            service_id=self.service_id,
            log_level=self.log_level,
        )

    def effective_variables(self) -> Dict[str, str]:
        """The variables the extension received (declared defaults plus the local file)."""
        setups = self.channel.setup_requests
        return variable_values(setups[-1].variables if setups else [], self.variables)

    @property
    def unknown_calls(self) -> List[ApiCall]:
        return self.api.unknown_calls

    # -- what the extension declared in its setup ------------------------------------------

    def subscriptions(self) -> Optional[Dict[str, List[str]]]:
        """Event type: statuses, as the extension's events worker subscribed (None before a
        worker is set up)."""
        setups = self.channel.setup_requests
        return dict(setups[-1].event_subscriptions or {}) if setups else None

    def schedulables(self) -> List[Schedulable]:
        """The schedulable methods the extension declared (`@schedulable`)."""
        setups = self.channel.setup_requests
        return list(setups[-1].schedulables or []) if setups else []

    def _not_subscribed(self, event_type: str) -> Optional[str]:
        subscriptions = self.subscriptions()
        if subscriptions is None or event_type in subscriptions:
            return None
        # Connect sends an extension no event of a type it does not subscribe to.
        return f'not sent: no subscription to {event_type}'

    # -- deliveries -------------------------------------------------------------------------

    async def wait_ready(self, instances: int = 1) -> None:
        """Until `instances` runners' background workers are set up and take tasks."""
        await self.channel.wait_ready(BACKGROUND, instances)

    def _next_task_id(self) -> str:
        return f'TQ-{self._run_id}-{next(self._task_numbers):04d}'

    async def deliver(self, item: Item) -> Delivery:
        """Deliver one item of an event file and wait for the results of its task(s)."""
        if isinstance(item, InstallationChange):
            delivery = await self._change_installation(item)
        elif isinstance(item, ScheduleRun):
            delivery = await self._run_schedule(item)
        else:
            delivery = await self._deliver_event(item)
        self.deliveries.append(delivery)
        return delivery

    async def _deliver_event(self, event: Event) -> Delivery:
        """Make the request look as the event says, then deliver the event's task(s), one
        after the other (a redelivery is the same task content under a new task id)."""
        self.objects.put_request(event.request)
        if event.installation is not None:
            self.objects.put_installation(event.installation)
        not_sent = self._not_subscribed(PURCHASE_REQUEST_EVENT)
        if not_sent:
            return Delivery(event=event, results=[], not_sent=not_sent)
        results = await self._send_tasks(
            event.deliveries, event.request_id, event.status,
            object_id=event.request_id, installation_id=event.installation_id,
            # Connect hands each task an API key of the installation's account.
            api_key=installation_api_key(event.installation_id) if event.installation else None,
        )
        return Delivery(event=event, results=results)

    async def _change_installation(self, change: InstallationChange) -> Delivery:
        """The installation changes status now, whatever the extension subscribes to; if it
        subscribes to installation_status_change, it is told, as Connect tells it."""
        installation = self.objects.change_installation_status(change.installation, change.status)
        not_sent = self._not_subscribed(INSTALLATION_STATUS_EVENT)
        if not_sent:
            return Delivery(event=change, results=[], served=installation, not_sent=not_sent)
        # The event's object is the installation itself, and the task is one of it.
        results = await self._send_tasks(
            change.deliveries, installation['id'], change.status,
            object_id=installation['id'], event_type=INSTALLATION_STATUS_EVENT,
            installation_id=installation['id'], api_key=installation_api_key(installation['id']),
        )
        return Delivery(event=change, results=results, served=installation)

    async def _run_schedule(self, run: ScheduleRun) -> Delivery:
        """Trigger a schedule of the method now: the runner reads the schedule and calls
        its `method` with it."""
        declared = self.schedulables()
        if not declared:
            # Connect has nothing to schedule.
            return Delivery(event=run, results=[], not_sent=(
                'not run: the extension declares no @schedulable method'))
        schedule = self.schedules.trigger(schedulable_of(run, declared), run.parameter)
        message = task_message(
            task_id=self._next_task_id(), object_id=schedule['id'],
            event_type=SCHEDULED_EXECUTION, task_category=SCHEDULED,
        )
        result = await self.channel.send_task(message, BACKGROUND, SCHEDULED_TASK_TIMEOUT)
        logger.info('Task %s for schedule %s (%s, parameter %s): %s (instance %s)',
                    result.task_id, schedule['id'], schedule['method'],
                    json.dumps(schedule['parameter']), result.result, result.instance_id)
        return Delivery(event=run, results=[result], served=schedule)

    async def _send_tasks(
        self, count: int, subject: str, status: str, **task: Any,
    ) -> List[TaskResult]:
        results = []
        for _ in range(count):
            result = await self.channel.send_task(
                task_message(task_id=self._next_task_id(), **task))
            logger.info('Task %s for %s (%s): %s (instance %s)', result.task_id,
                        subject, status, result.result, result.instance_id)
            results.append(result)
        return results

    async def deliver_all(self, items: Iterable[Item]) -> List[Delivery]:
        """Deliver every item and wait for all results, in the turns `events.in_turns`
        makes of them: an installation status change or a schedule run once all before it
        are answered.

        Events about different requests are delivered concurrently, as Connect does; those
        about one request one after the other, since each changes what `requests/{id}` says.
        """
        deliveries: List[Delivery] = []
        for turn in in_turns(items):
            if isinstance(turn[0], Event):
                deliveries.extend(await self._deliver_events(turn))
            else:
                deliveries.append(await self.deliver(turn[0]))
        return deliveries

    async def _deliver_events(self, events: List[Event]) -> List[Delivery]:
        by_request: Dict[str, List[int]] = {}
        for index, event in enumerate(events):
            by_request.setdefault(event.request_id, []).append(index)
        deliveries: List[Optional[Delivery]] = [None] * len(events)

        async def deliver_in_turn(indexes: List[int]) -> None:
            for index in indexes:
                deliveries[index] = await self.deliver(events[index])

        await asyncio.gather(*(deliver_in_turn(indexes) for indexes in by_request.values()))
        return [delivery for delivery in deliveries if delivery is not None]

