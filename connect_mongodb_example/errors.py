"""The errors the application tells apart, because each one leads to a different task result."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type name when it has none), for logs."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class ConfigurationError(ValueError):
    """A configuration variable is missing or malformed; the message names it."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f'{variable}: {problem}')
        self.variable = variable
        self.problem = problem


class InvalidRequest(ValueError):
    """The request given to the handler cannot be stored; retrying would not help."""


class StorageUnavailable(RuntimeError):
    """Storage could not be reached or did not answer in time; the event must be retried."""


class StorageRejected(RuntimeError):
    """Storage answered but refused the write (authentication, permissions, bad request)."""
