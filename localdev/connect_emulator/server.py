"""The emulation as one object: a TLS server on 127.0.0.1 and the deliveries it makes.

    async with ConnectEmulator(variables={'DATABASE_URL': ...}) as emulator:
        start the runner with emulator.runner_environment()
        await emulator.wait_ready()
        deliveries = await emulator.deliver_all(events)
"""
import asyncio
import itertools
import logging
import socket
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional

from aiohttp import web
from connect.eaas.core.proto import SetupRequest

from localdev.connect_emulator.certificates import LocalCertificates, create_certificates
from localdev.connect_emulator.dispatch import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_TASK_TIMEOUT,
    WorkerPool,
)
from localdev.connect_emulator.events import Event
from localdev.connect_emulator.latency import ApiLatency
from localdev.connect_emulator.objects import ConnectObjects
from localdev.connect_emulator.protocol import (
    BACKGROUND,
    Account,
    TaskResult,
    setup_response,
    task_message,
    variable_values,
)
from localdev.connect_emulator.rest import ApiCall, RestApi, require_api_key
from localdev.connect_emulator.websocket import RunnerChannel
from localdev.connect_emulator.webtasks import WebAppChannel

logger = logging.getLogger(__name__)

LOOPBACK = '127.0.0.1'
DEFAULT_ENVIRONMENT_ID = 'ENV-0000-0000-01'
#: The key the runner presents; Connect would issue one per extension environment.
RUNNER_API_KEY = 'ApiKey SU-000-000-000:local-emulation'


@dataclass(frozen=True)
class Delivery:
    """One event and what the runner answered each time it was delivered."""

    event: Event
    results: List[TaskResult]


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

    # -- deliveries -------------------------------------------------------------------------

    async def wait_ready(self, instances: int = 1) -> None:
        """Until `instances` runners' background workers are set up and take tasks."""
        await self.channel.wait_ready(BACKGROUND, instances)

    def _next_task_id(self) -> str:
        return f'TQ-{self._run_id}-{next(self._task_numbers):04d}'

    async def deliver(self, event: Event) -> Delivery:
        """Make the request look as the event says, then deliver the event's task(s), one
        after the other (a redelivery is the same task content under a new task id)."""
        self.objects.put_request(event.request)
        api_key = None
        if event.installation is not None:
            self.objects.put_installation(event.installation)
            # Connect hands each task an API key of the installation's account.
            api_key = f'ApiKey SU-000-000-000:installation-{event.installation_id}'
        results = []
        for _ in range(event.deliveries):
            message = task_message(
                task_id=self._next_task_id(),
                object_id=event.request_id,
                installation_id=event.installation_id,
                api_key=api_key,
            )
            result = await self.channel.send_task(message)
            logger.info('Task %s for %s (%s): %s (instance %s)', result.task_id,
                        event.request_id, event.status, result.result, result.instance_id)
            results.append(result)
        delivery = Delivery(event=event, results=results)
        self.deliveries.append(delivery)
        return delivery

    async def deliver_all(self, events: Iterable[Event]) -> List[Delivery]:
        """Deliver every event and wait for all results, in the order given.

        Events about different requests are delivered concurrently, as Connect does; those
        about one request one after the other, since each changes what `requests/{id}` says.
        """
        events = list(events)
        by_request: Dict[str, List[int]] = {}
        for index, event in enumerate(events):
            by_request.setdefault(event.request_id, []).append(index)
        deliveries: List[Optional[Delivery]] = [None] * len(events)

        async def deliver_in_turn(indexes: List[int]) -> None:
            for index in indexes:
                deliveries[index] = await self.deliver(events[index])

        await asyncio.gather(*(deliver_in_turn(indexes) for indexes in by_request.values()))
        return [delivery for delivery in deliveries if delivery is not None]
