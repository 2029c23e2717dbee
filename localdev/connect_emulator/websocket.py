"""The EaaS websocket endpoint: where runner workers connect, get set up, and take tasks.

The runner opens one connection per worker (`runner_type` background and interactive).
Each starts with the worker's `setup_request`, answered with a `setup_response`; from then
on tasks go down and results come back as `task` messages with an output. A worker that
stops sends `shutdown` and gets no new task. Several runners (instances) may be connected
at once: `dispatch.WorkerPool` decides which worker takes each task.
"""
import asyncio
import logging
from typing import AsyncIterator, Callable, List, Optional

from aiohttp import WSMessage, WSMsgType, web
from connect.eaas.core.proto import Message, MessageType, SetupRequest

from localdev.connect_emulator.dispatch import (
    WORKER_WAIT_SECONDS,
    RunnerDisconnected,
    RunnerLink,
    WorkerPool,
)
from localdev.connect_emulator.protocol import (
    BACKGROUND,
    ProtocolError,
    TaskResult,
    parse_message,
)
from localdev.connect_emulator.rest import API_PREFIX, connect_error

logger = logging.getLogger(__name__)

WS_PATH = f'{API_PREFIX}/devops/ws/{{environment_id}}/{{instance_id}}'
#: The emulation's wait for a new connection's setup_request. The runner itself waits 5 s
#: for the answer, but builds its request first (loading the extension), which takes longer
#: when several runners start at once on a busy machine; each miss costs it a 5 s back-off.
HANDSHAKE_TIMEOUT_SECONDS = 30
#: Largest frame the runner accepts (websockets max_size in workers/base.py).
MAX_MESSAGE_SIZE = 2 ** 21

SetupResponder = Callable[[SetupRequest], dict]
# Importable from here as before.
__all__ = ['RunnerChannel', 'RunnerDisconnected', 'RunnerLink', 'WORKER_WAIT_SECONDS']


async def runner_messages(ws: web.WebSocketResponse, who: str) -> AsyncIterator[Message]:
    """The protocol messages a runner's worker sends on `ws`, its setup_request first. A
    worker silent for HANDSHAKE_TIMEOUT_SECONDS is disconnected; frames that are not protocol
    messages are logged and skipped. `who` names the worker in the log."""
    try:
        first = await ws.receive(timeout=HANDSHAKE_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        logger.warning('%s sent no setup_request within %ds', who, HANDSHAKE_TIMEOUT_SECONDS)
        await ws.close()
        return
    message = _message(first, who)
    if message is not None:
        yield message
    async for frame in ws:
        message = _message(frame, who)
        if message is not None:
            yield message


def _message(frame: WSMessage, who: str) -> Optional[Message]:
    if frame.type != WSMsgType.TEXT:
        if frame.type not in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            logger.warning('%s: ignoring a %s frame', who, frame.type.name)
        return None
    try:
        return parse_message(frame.data)
    except ProtocolError as error:
        logger.error('%s: %s', who, error)
        return None


class RunnerChannel:
    def __init__(
        self, *, environment_id: str, respond_to_setup: SetupResponder,
        workers: Optional[WorkerPool] = None,
    ):
        self.environment_id = environment_id
        self._respond_to_setup = respond_to_setup
        self.workers = workers or WorkerPool()
        self._open: List[web.WebSocketResponse] = []
        #: What the runner sent, in order: for tests and for debugging a runner.
        self.setup_requests: List[SetupRequest] = []
        self.results: List[TaskResult] = []
        self.shutdowns: List[str] = []

    def route(self) -> web.RouteDef:
        return web.get(WS_PATH, self.handle)

    async def wait_ready(self, runner_type: str = BACKGROUND, count: int = 1) -> None:
        """Until `count` workers of this type have completed their setup and take tasks."""
        await self.workers.wait_ready(runner_type, count)

    def is_ready(self, runner_type: str = BACKGROUND) -> bool:
        return self.workers.is_ready(runner_type)

    async def send_task(
        self, message: dict, runner_type: str = BACKGROUND, timeout: Optional[float] = None,
    ) -> TaskResult:
        """Send one task to a worker and wait for its result (see `WorkerPool.send_task`)."""
        return await self.workers.send_task(message, runner_type, timeout)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.match_info['environment_id'] != self.environment_id:
            logger.warning('Runner connected for environment %s, expected %s',
                           request.match_info['environment_id'], self.environment_id)
            return connect_error(404, 'DEVOPS_NOT_FOUND', 'Environment not found.')
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_SIZE)
        await ws.prepare(request)
        link = RunnerLink(
            runner_type=request.query.get('runner_type', BACKGROUND),
            instance_id=request.match_info['instance_id'],
            ws=ws,
        )
        self._open.append(ws)
        logger.info('Runner %s worker connected (instance %s)', link.runner_type, link.instance_id)
        try:
            await self._serve(link)
        finally:
            await self._forget(link)
        return ws

    async def _serve(self, link: RunnerLink) -> None:
        async for message in runner_messages(link.ws, f'Runner {link.runner_type} worker'):
            await self._on_message(link, message)

    async def _on_message(self, link: RunnerLink, message: Message) -> None:
        kind = message.message_type
        if kind == MessageType.SETUP_REQUEST:
            await self._on_setup(link, message.data)
        elif kind == MessageType.TASK:
            self._on_result(link, message)
        elif kind == MessageType.SHUTDOWN:
            # The worker is stopping: it finishes its tasks but must not be given new ones.
            logger.info('Runner %s worker is shutting down', link.runner_type)
            self.shutdowns.append(link.runner_type)
            await self.workers.retire(link)
        else:
            logger.warning('Unexpected %r message from the runner, ignored', kind)

    async def _on_setup(self, link: RunnerLink, setup: SetupRequest) -> None:
        self.setup_requests.append(setup)
        await link.ws.send_json(self._respond_to_setup(setup))
        await self.workers.add(link)
        logger.info('Runner %s worker set up (runner %s, subscriptions: %s)',
                    link.runner_type, setup.runner_version,
                    ', '.join(setup.event_subscriptions or {}) or 'none')

    def _on_result(self, link: RunnerLink, message: Message) -> None:
        try:
            result = TaskResult.from_task(message.data, instance_id=link.instance_id)
        except ProtocolError as error:
            logger.error('Runner %s worker: %s', link.runner_type, error)
            return
        self.results.append(result)
        if not self.workers.resolve(link, result):
            logger.warning('Result for unknown task %s ignored', result.task_id)

    async def _forget(self, link: RunnerLink) -> None:
        if link.ws in self._open:
            self._open.remove(link.ws)
        await self.workers.remove(link)
        logger.info('Runner %s worker disconnected (instance %s)',
                    link.runner_type, link.instance_id)

    async def close(self) -> None:
        for ws in list(self._open):
            await ws.close()
