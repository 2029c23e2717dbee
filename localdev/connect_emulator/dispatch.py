"""Which connected runner worker takes a task, and what happens when none answers it.

Connect lets an extension run several runners at once (each with its own INSTANCE_ID):
every task goes to one of the workers of its type, and a task whose worker disconnected, or
that got no result within a timeout, is delivered again, to another instance if there is
one. So a runner that dies mid-task costs a redelivery, never the event.

Here each worker holds at most `max_in_flight` tasks at once; a task goes to the worker with
the fewest out (ties in turn), and waits in the emulation while every worker is full, so a
runner that joins later still gets work and the timeout measures the runner, not a backlog.
"""
import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from localdev.connect_emulator.protocol import TaskResult

logger = logging.getLogger(__name__)

#: Longest wait for a worker to take a task: a runner that has gone (or never set up) must
#: fail the delivery, not hang it.
WORKER_WAIT_SECONDS = 60
#: A task without a result this long after it was sent is sent again. The runner allows a
#: background task 300 s (BACKGROUND_TASK_MAX_EXECUTION_TIME); the emulation is less patient.
DEFAULT_TASK_TIMEOUT = 120.0
#: Tasks one worker holds at once: enough to hide the runner's 0.5 s result poll.
DEFAULT_MAX_IN_FLIGHT = 32
#: Sends of one task (the first included) before its delivery fails.
MAX_ATTEMPTS = 5


class RunnerDisconnected(ConnectionError):
    """No worker answered the task: it disconnected, or none was there to take it."""


@dataclass(eq=False)
class RunnerLink:
    """One websocket connection from a runner worker."""

    runner_type: str
    instance_id: str
    ws: Any  # aiohttp.web.WebSocketResponse: anything with `async send_json(dict)`
    pending: Dict[str, 'asyncio.Future[TaskResult]'] = field(default_factory=dict)


@dataclass(frozen=True)
class Redelivery:
    """A task sent again: which instance failed it, and why."""

    task_id: str
    instance_id: str
    reason: str


class WorkerPool:
    """The workers set up to take tasks, by runner type, and the sending of tasks to them."""

    def __init__(
        self,
        *,
        task_timeout: float = DEFAULT_TASK_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ):
        if task_timeout <= 0 or max_in_flight < 1:
            raise ValueError('task_timeout must be positive and max_in_flight at least 1')
        self.task_timeout = task_timeout
        self.max_in_flight = max_in_flight
        self._links: List[RunnerLink] = []
        self._changed: Optional[asyncio.Condition] = None
        self._turns = itertools.count()
        self._last_turn: Dict[int, int] = {}
        #: Every task sent again, in order (for tests and the benchmark).
        self.redeliveries: List[Redelivery] = []

    @property
    def changed(self) -> asyncio.Condition:
        # Made on first use: it belongs to the running event loop.
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    # -- membership -------------------------------------------------------------------------

    def links(self, runner_type: str) -> List[RunnerLink]:
        return [link for link in self._links if link.runner_type == runner_type]

    def instances(self, runner_type: str) -> List[str]:
        """The instance ids with a worker of this type set up, in the order they joined."""
        return [link.instance_id for link in self.links(runner_type)]

    def is_ready(self, runner_type: str) -> bool:
        return bool(self.links(runner_type))

    async def wait_ready(self, runner_type: str, count: int = 1) -> None:
        """Until `count` workers of this type are set up."""
        async with self.changed:
            await self.changed.wait_for(lambda: len(self.links(runner_type)) >= count)

    async def wait_instance(self, runner_type: str, instance_id: str) -> None:
        """Until the worker of this type of that instance is set up."""
        async with self.changed:
            await self.changed.wait_for(lambda: instance_id in self.instances(runner_type))

    async def add(self, link: RunnerLink) -> None:
        """A worker completed its setup: it takes tasks from now on."""
        async with self.changed:
            self._links.append(link)
            self.changed.notify_all()

    async def retire(self, link: RunnerLink) -> None:
        """A worker is shutting down: it finishes its tasks but gets no new one."""
        async with self.changed:
            if link in self._links:
                self._links.remove(link)
                self._last_turn.pop(id(link), None)
            self.changed.notify_all()

    async def remove(self, link: RunnerLink) -> None:
        """A worker disconnected: the tasks it held go to another worker."""
        await self.retire(link)
        for task_id, future in link.pending.items():
            if not future.done():
                future.set_exception(RunnerDisconnected(
                    f'the runner {link.runner_type} worker of instance {link.instance_id} '
                    f'disconnected before answering task {task_id}',
                ))

    # -- tasks ------------------------------------------------------------------------------

    def resolve(self, link: RunnerLink, result: TaskResult) -> bool:
        """A result came back over `link`; False if no task of that id was waiting there
        (answered already, or sent again elsewhere after a timeout)."""
        future = link.pending.get(result.task_id)
        if future is None or future.done():
            return False
        future.set_result(result)
        return True

    async def send_task(
        self, message: dict, runner_type: str, timeout: Optional[float] = None,
    ) -> TaskResult:
        """Send a task to a worker and wait for its result, sending it again (the same task)
        while its worker disconnects or keeps it longer than `timeout` (by default
        `task_timeout`)."""
        task_id = message['data']['options']['task_id']
        timeout = timeout or self.task_timeout
        failed_on: Optional[str] = None
        reason = ''
        for _ in range(MAX_ATTEMPTS):
            link, future = await self._reserve(runner_type, task_id, avoid=failed_on)
            try:
                await link.ws.send_json(message)
                return await asyncio.wait_for(asyncio.shield(future), timeout)
            except asyncio.TimeoutError:
                reason = f'instance {link.instance_id} gave no result within {timeout:g}s'
            except (RunnerDisconnected, ConnectionError, RuntimeError) as error:
                # aiohttp raises ConnectionResetError or RuntimeError on a closing socket.
                reason = str(error) or type(error).__name__
            finally:
                await self._release(link, task_id, future)
            failed_on = link.instance_id
            self.redeliveries.append(Redelivery(task_id, link.instance_id, reason))
            logger.warning('Task %s delivered again: %s', task_id, reason)
        raise RunnerDisconnected(
            f'task {task_id} got no result in {MAX_ATTEMPTS} deliveries (last: {reason})',
        )

    async def _reserve(
        self, runner_type: str, task_id: str, avoid: Optional[str],
    ) -> 'tuple[RunnerLink, asyncio.Future[TaskResult]]':
        """A worker with room for one more task (another instance than `avoid` if one has
        room), the task registered on it before any other task can take the slot."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WORKER_WAIT_SECONDS
        async with self.changed:
            while True:
                links = self.links(runner_type)
                if links:
                    deadline = loop.time() + WORKER_WAIT_SECONDS
                free = [link for link in links if len(link.pending) < self.max_in_flight]
                if free:
                    preferred = [link for link in free if link.instance_id != avoid] or free
                    link = min(preferred, key=lambda item: (
                        len(item.pending), self._last_turn.get(id(item), -1)))
                    self._last_turn[id(link)] = next(self._turns)
                    future: asyncio.Future[TaskResult] = loop.create_future()
                    link.pending[task_id] = future
                    return link, future
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise RunnerDisconnected(
                        f'no runner {runner_type} worker was connected and set up to take a '
                        f'task within {WORKER_WAIT_SECONDS}s',
                    )
                try:
                    # Busy workers free a slot when a task ends, which notifies.
                    await asyncio.wait_for(self.changed.wait(), remaining)
                except asyncio.TimeoutError:
                    continue

    async def _release(
        self, link: RunnerLink, task_id: str, future: 'asyncio.Future[TaskResult]',
    ) -> None:
        if link.pending.get(task_id) is future:
            del link.pending[task_id]
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()  # retrieved: a disconnect seen here is no unhandled error
        async with self.changed:
            self.changed.notify_all()
