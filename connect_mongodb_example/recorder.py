"""What the handler does with one event: validate, store everywhere, pick the task result."""
import asyncio
import logging
from typing import Any, Hashable, List, Mapping, Optional

from connect.eaas.core.responses import BackgroundResponse

from connect_mongodb_example.errors import (
    ConfigurationError,
    InvalidRequest,
    StorageRejected,
    StorageUnavailable,
)
from connect_mongodb_example.records import PURCHASE_REQUEST_EVENT, EventRecord, build_record
from connect_mongodb_example.settings import Settings, load_settings
from connect_mongodb_example.storage import BACKENDS
from connect_mongodb_example.storage.base import EventStore
from connect_mongodb_example.storage.registry import get_store, in_use


def stores_for(settings: Settings, owner: Hashable = None) -> List[EventStore]:
    """The stores of these settings; `owner` (an installation id) now uses them."""
    return [get_store(BACKENDS[name], options, owner)
            for name, options in settings.backend_settings]


async def record_event(
    request: Any,
    *,
    config: Optional[Mapping[str, Any]],
    logger: logging.LoggerAdapter,
    installation: Optional[Mapping[str, Any]] = None,
    event_type: str = PURCHASE_REQUEST_EVENT,
) -> BackgroundResponse:
    """Store one event in every configured backend.

    - stored everywhere: `done`;
    - the request cannot be stored (not an object, no id or status, too large for one of the
      backends): `fail`, nothing written anywhere;
    - a backend is unreachable or too slow: `reschedule`; Connect delivers the event again
      and the backends that already have it only count one more delivery;
    - configuration is wrong (a backend refusing the credentials or the grants included), or
      a backend refused the write: the error is raised, which the runner reports and
      retries, so the event waits for the fix instead of being dropped.
    """
    try:
        record = build_record(request, event_type=event_type, installation=installation)
    except InvalidRequest as error:
        logger.error('Not storing the event: %s', error)
        return BackgroundResponse.fail(output=str(error))

    try:
        settings = load_settings(config)
    except ConfigurationError as error:
        logger.error('Configuration problem, event %s not stored yet: %s', record.key, error)
        raise

    stores = stores_for(settings, record.installation_id)
    try:
        for store in stores:
            store.check_storable(record)
    except InvalidRequest as error:
        logger.error('Not storing event %s: %s', record.key, error)
        return BackgroundResponse.fail(output=str(error))
    async with in_use(stores):
        outcomes = await asyncio.gather(
            *(_save(store, record, settings.storage_timeout) for store in stores),
            return_exceptions=True,
        )
    return _response(record, stores, outcomes, settings, logger)


async def _save(store: EventStore, record: EventRecord, timeout: float) -> int:
    try:
        return await asyncio.wait_for(store.save(record), timeout)
    except asyncio.TimeoutError:
        raise StorageUnavailable(f'{store.describe()}: no answer within {timeout:g}s') from None


def _response(
    record: EventRecord,
    stores: List[EventStore],
    outcomes: List[Any],
    settings: Settings,
    logger: logging.LoggerAdapter,
) -> BackgroundResponse:
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    for store, outcome in zip(stores, outcomes):
        if not isinstance(outcome, BaseException):
            logger.info(
                'Stored %s in %s (delivery %d)', record.key, store.describe(), outcome,
            )
    invalid = [error for error in failures if isinstance(error, InvalidRequest)]
    if invalid:
        logger.error('Storage cannot keep event %s: %s', record.key, invalid[0])
        return BackgroundResponse.fail(output=str(invalid[0]))
    unexpected = [
        error for error in failures if not isinstance(error, StorageUnavailable)
    ]
    if unexpected:
        error = unexpected[0]
        if isinstance(error, ConfigurationError):
            logger.error('Configuration problem, event %s not stored yet: %s', record.key, error)
        elif isinstance(error, StorageRejected):
            logger.error('Storage refused event %s: %s', record.key, error)
        raise error
    if failures:
        for error in failures:
            logger.warning(
                'Event %s rescheduled in %ds: %s', record.key, settings.retry_countdown, error,
            )
        return BackgroundResponse.reschedule(countdown=settings.retry_countdown)
    return BackgroundResponse.done()
