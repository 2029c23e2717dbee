"""All the configuration of the application, parsed and checked in one place."""
from dataclasses import dataclass
from typing import Dict, Hashable, List, Mapping, Optional, Tuple

from connect_mongodb_example.storage import BACKENDS
from connect_mongodb_example.variables import ConfigReader, Variable

STORAGE_BACKENDS = Variable(
    'STORAGE_BACKENDS',
    'Comma-separated backends each event is written to: '
    + ', '.join(f'`{name}`' for name in BACKENDS) + '. The Events page reads from the first.',
    default='sql',
)
STORAGE_TIMEOUT_SECONDS = Variable(
    'STORAGE_TIMEOUT_SECONDS',
    'Longest wait for one storage write before the event is rescheduled.',
    default='10',
)
RETRY_COUNTDOWN_SECONDS = Variable(
    'RETRY_COUNTDOWN_SECONDS',
    'Delay before Connect redelivers an event whose storage was unavailable (30 or more).',
    default='30',
)
APPLICATION_VARIABLES = (STORAGE_BACKENDS, STORAGE_TIMEOUT_SECONDS, RETRY_COUNTDOWN_SECONDS)


@dataclass(frozen=True)
class Settings:
    storage_timeout: float
    retry_countdown: int
    # (backend name, that backend's settings), in the order of STORAGE_BACKENDS.
    backend_settings: Tuple[Tuple[str, Hashable], ...]


def all_variables() -> List[Variable]:
    """Every variable the application reads, application-wide first, then per backend."""
    variables = list(APPLICATION_VARIABLES)
    for backend in BACKENDS.values():
        variables.extend(backend.variables)
    return variables


def variable_declarations() -> List[Dict[str, object]]:
    return [variable.declaration() for variable in all_variables()]


def load_settings(config: Optional[Mapping[str, object]]) -> Settings:
    """Check the variables of the selected backends; raise `ConfigurationError` on the first
    problem. Backends that are not selected are not checked."""
    reader = ConfigReader(config)
    backends = reader.names(STORAGE_BACKENDS, BACKENDS)
    return Settings(
        storage_timeout=reader.seconds(STORAGE_TIMEOUT_SECONDS, minimum=0.1, maximum=600),
        retry_countdown=reader.integer(RETRY_COUNTDOWN_SECONDS, minimum=30, maximum=86400),
        backend_settings=tuple((name, BACKENDS[name].parse_settings(reader)) for name in backends),
    )
