"""All the configuration of the application, parsed and checked in one place."""
from dataclasses import dataclass
from typing import Dict, Hashable, List, Mapping, Optional, Tuple

from connect_mongodb_example.storage import BACKENDS
from connect_mongodb_example.storage.idle import STORAGE_IDLE_SECONDS
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
ON_UNINSTALL = Variable(
    'ON_UNINSTALL',
    "What happens to an installation's events when it uninstalls the extension: `keep` them, "
    'or `purge` them once `PURGE_GRACE_DAYS` have passed (a reinstall before then cancels it).',
    default='keep',
)
PURGE_GRACE_DAYS = Variable(
    'PURGE_GRACE_DAYS',
    'Days between an uninstall and the purge of its events (`ON_UNINSTALL=purge`), 0 to 3650.',
    default='30',
)
EVENTS_RETENTION_DAYS = Variable(
    'EVENTS_RETENTION_DAYS',
    'Events first received longer ago than this many days are deleted by the data lifecycle '
    'job, 1 to 36500; empty or 0 keeps them forever.',
    default='0',
)
UNINSTALL_POLICIES = ('keep', 'purge')
APPLICATION_VARIABLES = (
    STORAGE_BACKENDS, STORAGE_TIMEOUT_SECONDS, RETRY_COUNTDOWN_SECONDS,
    ON_UNINSTALL, PURGE_GRACE_DAYS, EVENTS_RETENTION_DAYS, STORAGE_IDLE_SECONDS,
)


@dataclass(frozen=True)
class Settings:
    storage_timeout: float
    retry_countdown: int
    # (backend name, that backend's settings), in the order of STORAGE_BACKENDS.
    backend_settings: Tuple[Tuple[str, Hashable], ...]
    #: One of UNINSTALL_POLICIES.
    on_uninstall: str = 'keep'
    purge_grace_days: int = 30
    #: None: events are kept forever.
    retention_days: Optional[int] = None


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
        on_uninstall=reader.choice(ON_UNINSTALL, UNINSTALL_POLICIES),
        purge_grace_days=reader.integer(PURGE_GRACE_DAYS, minimum=0, maximum=3650),
        retention_days=reader.integer(EVENTS_RETENTION_DAYS, minimum=0, maximum=36500) or None,
    )
