"""Every error the application tells apart, and what each one becomes.

Each class declares, once, the task result an event gets when its storage raises it, and the
HTTP status the web application answers with::

    ExtensionError                      task result            HTTP
    ├── ConfigurationError              raised (retried)       503   a variable is missing or
    │                                                                wrong, or a backend refused
    │                                                                its credentials or grants
    ├── InvalidRequest                  fail                   400   the event (or the caller's
    │                                                                query) can never be served
    └── StorageError
        ├── StorageUnavailable          reschedule             503   unreachable or too slow: a
        │                                                            later attempt may pass
        └── StorageRejected             raised (retried)       502   the backend answered, and
            └── DuplicateKey            (settled in the store)       refused

"Raised" means the handler lets the error out: the runner reports the task failed and
Connect retries it, so the event waits for the fix instead of being dropped.
"""
import asyncio
from typing import Awaitable, ClassVar, TypeVar

T = TypeVar('T')

#: Task results, as `_task_result` (extension.py) picks them.
DONE, FAIL, RESCHEDULE, RAISE = 'done', 'fail', 'reschedule', 'raise'


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type name when it has none), for logs."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class ExtensionError(Exception):
    """The base of every error the application raises on purpose."""

    #: What an event becomes when storing it raised this error.
    task_result: ClassVar[str] = RAISE
    #: What the web application answers when a read raised this error.
    http_status: ClassVar[int] = 500


class ConfigurationError(ExtensionError, ValueError):
    """A configuration variable is missing or malformed, or a backend refused the access it
    grants; the message names the variable and never carries a secret."""

    http_status = 503

    def __init__(self, variable: str, problem: str):
        super().__init__(f'{variable}: {problem}')
        self.variable = variable
        self.problem = problem


class InvalidRequest(ExtensionError, ValueError):
    """What was asked can never be served, however often it is tried: an event that cannot
    be stored, or a read the backend cannot run (a number out of its range)."""

    task_result = FAIL
    http_status = 400


class StorageError(ExtensionError, RuntimeError):
    """A backend did not do what was asked."""

    http_status = 503


class StorageUnavailable(StorageError):
    """Storage could not be reached or did not answer in time; the event must be retried."""

    task_result = RESCHEDULE
    http_status = 503


class StorageRejected(StorageError):
    """Storage answered but refused the write (authentication, permissions, bad request)."""

    http_status = 502


class DuplicateKey(StorageRejected):
    """A racing insert stored the same key first; the store retries its update, which now
    matches, so this never leaves the store."""


async def within(awaitable: Awaitable[T], seconds: float, where: str) -> T:
    """`awaitable`'s result, or `StorageUnavailable` naming `where` once `seconds` pass: the
    one wording of a storage timeout, for writes, reads and pings alike."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        raise StorageUnavailable(f'{where}: no answer within {seconds:g}s') from None
