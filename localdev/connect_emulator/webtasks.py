"""The web side of the EaaS websocket: where the runner's web worker connects and takes
web tasks, the way Connect's gateway hands it the HTTP calls made to the extension.

The runner's `WebWorker` connects to `.../devops/ws/{environment}/{instance}/webapp`, sends a
`setup_request` (its UI modules and variables) and gets a `setup_response`. Each HTTP call
then travels as a `web_task` message: the request (method, path and query, headers, body in
base64) plus the call context in the options (installation, account, user, installation API
key); the worker adds the X-Connect-* headers from that context, runs the extension's FastAPI
application, and sends a `web_task` back with the response, matched by its correlation id.
"""
import asyncio
import base64
import itertools
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from aiohttp import web
from connect.eaas.core.proto import (
    HttpRequest,
    HttpResponse,
    Message,
    MessageType,
    SetupRequest,
    WebTask,
    WebTaskOptions,
)

from localdev.connect_emulator.protocol import PROTOCOL_VERSION
from localdev.connect_emulator.rest import API_PREFIX, connect_error
from localdev.connect_emulator.websocket import (
    MAX_MESSAGE_SIZE,
    SetupResponder,
    runner_messages,
)

logger = logging.getLogger(__name__)

WEBAPP_WS_PATH = f'{API_PREFIX}/devops/ws/{{environment_id}}/{{instance_id}}/webapp'
#: How long a browser call waits for a web worker to be connected, then for its answer;
#: past that the gateway answers 503 or 504 instead of hanging the page.
WORKER_WAIT_SECONDS = 30
ANSWER_WAIT_SECONDS = 60
#: The user a portal call comes from (the emulation has one).
PORTAL_USER_ID = 'UR-000-000-000'
ACCOUNT_ROLES = {'VA': 'vendor', 'PA': 'distributor', 'TA': 'reseller'}


class WebTaskError(ConnectionError):
    """No web worker answered; `status` is what the gateway answers the browser."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CallContext:
    """Who makes a call, as Connect's gateway tells the extension (the web task options)."""

    installation_id: Optional[str] = None
    account_id: Optional[str] = None
    account_role: Optional[str] = None
    api_key: Optional[str] = None
    user_id: Optional[str] = PORTAL_USER_ID
    call_type: str = 'user'
    call_source: str = 'ui'


def installation_api_key(installation_id: str) -> str:
    """The API key Connect hands the extension for calls made on an installation's behalf
    (the same one the events tasks of that installation carry)."""
    return f'ApiKey SU-000-000-000:installation-{installation_id}'


def installation_context(installation: Mapping[str, Any], extension_owner: str) -> CallContext:
    """A portal user of the installation's account opening the extension's page."""
    account_id = installation['owner']['id']
    return CallContext(
        installation_id=installation['id'],
        account_id=account_id,
        account_role=ACCOUNT_ROLES.get(account_id[:2], 'vendor'),
        api_key=installation_api_key(installation['id']),
        # `admin` when the caller's account owns the extension, as Connect sets it.
        call_type='admin' if account_id == extension_owner else 'user',
    )


def web_task_message(
    *, correlation_id: str, reply_to: str, request: HttpRequest, context: CallContext,
) -> Dict[str, Any]:
    """A `web_task` carrying one HTTP call with its call context."""
    message = Message(
        version=PROTOCOL_VERSION,
        message_type=MessageType.WEB_TASK,
        data=WebTask(
            options=WebTaskOptions(
                correlation_id=correlation_id,
                reply_to=reply_to,
                api_key=context.api_key,
                installation_id=context.installation_id,
                account_id=context.account_id,
                account_role=context.account_role,
                user_id=context.user_id,
                call_type=context.call_type,
                call_source=context.call_source,
            ),
            request=request,
        ),
    )
    return message.dict()


def encode_body(body: bytes) -> Optional[str]:
    return base64.b64encode(body).decode('ascii') if body else None


def decode_body(content: Optional[str]) -> bytes:
    return base64.b64decode(content) if content else b''


@dataclass(eq=False)
class WebWorkerLink:
    """One websocket connection from a runner's web worker."""

    instance_id: str
    ws: web.WebSocketResponse
    pending: Dict[str, 'asyncio.Future[HttpResponse]'] = field(default_factory=dict)
    taking_tasks: bool = False


class WebAppChannel:
    """Web workers connect here; `call` sends one HTTP call to one of them."""

    def __init__(self, *, environment_id: str, respond_to_setup: SetupResponder):
        self.environment_id = environment_id
        self._respond_to_setup = respond_to_setup
        self._links: List[WebWorkerLink] = []
        self._turns = itertools.count()
        self._ready_event: Optional[asyncio.Event] = None
        #: What the web workers sent at setup (their UI modules, variables): for the portal.
        self.setup_requests: List[SetupRequest] = []

    def route(self) -> web.RouteDef:
        return web.get(WEBAPP_WS_PATH, self.handle)

    @property
    def _ready(self) -> asyncio.Event:
        # Made on first use, inside the event loop (Python 3.9 binds an Event to a loop).
        if self._ready_event is None:
            self._ready_event = asyncio.Event()
        return self._ready_event

    def is_ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        """Until a web worker has completed its setup and takes web tasks."""
        await self._ready.wait()

    @property
    def ui_modules(self) -> Dict[str, Any]:
        """The UI modules the extension declared (`@module_pages` and the like)."""
        return dict(self.setup_requests[-1].ui_modules or {}) if self.setup_requests else {}

    async def call(self, request: HttpRequest, context: CallContext) -> HttpResponse:
        """Send one HTTP call to a web worker and wait for its response."""
        try:
            await asyncio.wait_for(self.wait_ready(), WORKER_WAIT_SECONDS)
        except asyncio.TimeoutError:
            raise WebTaskError(
                503, f'no runner web worker was connected within {WORKER_WAIT_SECONDS}s '
                     f'(does the extension declare a `webapp` entry point?)',
            ) from None
        takers = [link for link in self._links if link.taking_tasks]
        if not takers:  # the last one said it shuts down while this call waited
            raise WebTaskError(503, 'the runner web worker is shutting down')
        link = takers[next(self._turns) % len(takers)]
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()
        link.pending[correlation_id] = future
        try:
            try:
                await link.ws.send_json(web_task_message(
                    correlation_id=correlation_id, reply_to=link.instance_id,
                    request=request, context=context,
                ))
            except (ConnectionError, RuntimeError) as error:  # closing under our feet
                raise WebTaskError(502, f'the runner web worker is gone: {error}') from None
            return await asyncio.wait_for(future, ANSWER_WAIT_SECONDS)
        except asyncio.TimeoutError:
            raise WebTaskError(
                504, f'the web worker did not answer {request.method} {request.url} '
                     f'within {ANSWER_WAIT_SECONDS}s',
            ) from None
        finally:
            link.pending.pop(correlation_id, None)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.match_info['environment_id'] != self.environment_id:
            logger.warning('Web worker connected for environment %s, expected %s',
                           request.match_info['environment_id'], self.environment_id)
            return connect_error(404, 'DEVOPS_NOT_FOUND', 'Environment not found.')
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_SIZE)
        await ws.prepare(request)
        link = WebWorkerLink(instance_id=request.match_info['instance_id'], ws=ws)
        self._links.append(link)
        logger.info('Runner web worker connected (instance %s)', link.instance_id)
        try:
            await self._serve(link)
        finally:
            self._forget(link)
        return ws

    async def _serve(self, link: WebWorkerLink) -> None:
        async for message in runner_messages(link.ws, 'Runner web worker'):
            await self._on_message(link, message)

    async def _on_message(self, link: WebWorkerLink, message: Message) -> None:
        kind = message.message_type
        if kind == MessageType.SETUP_REQUEST:
            await self._on_setup(link, message.data)
        elif kind == MessageType.WEB_TASK:
            self._on_answer(link, message.data)
        elif kind == MessageType.SHUTDOWN:
            logger.info('Runner web worker is shutting down')
            link.taking_tasks = False
            self._update_ready()
        else:
            logger.warning('Unexpected %r message from the web worker, ignored', kind)

    async def _on_setup(self, link: WebWorkerLink, setup: SetupRequest) -> None:
        self.setup_requests.append(setup)
        await link.ws.send_json(self._respond_to_setup(setup))
        link.taking_tasks = True
        self._update_ready()
        logger.info('Runner web worker set up (runner %s, UI modules: %s)',
                    setup.runner_version, ', '.join(setup.ui_modules or {}) or 'none')

    def _on_answer(self, link: WebWorkerLink, task: WebTask) -> None:
        future = link.pending.get(task.options.correlation_id)
        if future is None or future.done():
            logger.warning('Answer to unknown web task %s ignored', task.options.correlation_id)
        elif task.response is None:
            future.set_exception(WebTaskError(
                502, f'the web worker answered web task {task.options.correlation_id} '
                     f'without a response',
            ))
        else:
            future.set_result(task.response)

    def _update_ready(self) -> None:
        if any(link.taking_tasks for link in self._links):
            self._ready.set()
        else:
            self._ready.clear()

    def _forget(self, link: WebWorkerLink) -> None:
        if link in self._links:
            self._links.remove(link)
        self._update_ready()
        for correlation_id, future in link.pending.items():
            if not future.done():
                future.set_exception(WebTaskError(
                    502, f'the runner web worker disconnected before answering web task '
                         f'{correlation_id}',
                ))
        logger.info('Runner web worker disconnected (instance %s)', link.instance_id)

    async def close(self) -> None:
        for link in list(self._links):
            await link.ws.close()
