"""The errors the application tells apart, because each one leads to a different task result."""


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
