"""The Connect events application: every purchase-request event is stored in every backend.

Read top to bottom: the events it subscribes to, then what one event goes through (build
the record, check every store can keep it, save it everywhere, pick the task result).
"""
import asyncio
import logging
from typing import Any, Dict, List, Mapping

from connect.eaas.core.decorators import event, variables
from connect.eaas.core.extension import EventsApplicationBase
from connect.eaas.core.responses import BackgroundResponse

from connect_mongodb_example.errors import (
    FAIL,
    RAISE,
    RESCHEDULE,
    ConfigurationError,
    ExtensionError,
    InvalidRequest,
    StorageRejected,
    within,
)
from connect_mongodb_example.event_record import EventRecord, EventType, build_record
from connect_mongodb_example.settings import Settings, load_settings, variable_declarations
from connect_mongodb_example.storage.base import EventStore
from connect_mongodb_example.storage.registry import close_all, in_use, stores_for

PURCHASE_REQUEST = EventType(
    'asset_purchase_request_processing',
    statuses=('pending', 'approved', 'failed', 'inquiring', 'scheduled', 'revoking', 'revoked'),
)


@variables(variable_declarations())
class StatefulEventsApplication(EventsApplicationBase):
    """A multi-account events application; storage clients are shared by the whole process,
    since the runner builds a new instance of this class for every task."""

    @event(PURCHASE_REQUEST.name, statuses=list(PURCHASE_REQUEST.statuses))
    async def handle_asset_purchase_request_processing(
        self, request: Dict[str, Any],
    ) -> BackgroundResponse:
        return await self.store_event(PURCHASE_REQUEST, request)

    async def store_event(self, event_type: EventType, request: Any) -> BackgroundResponse:
        """Store one event in every configured backend.

        - stored everywhere: `done`;
        - the request cannot be stored (not an object, no id or status, too large for one of
          the backends): `fail`, nothing written anywhere;
        - a backend is unreachable or too slow: `reschedule`; Connect delivers the event
          again and the backends that already have it only count one more delivery;
        - configuration is wrong (a backend refusing the credentials or the grants included),
          or a backend refused the write: the error is raised, which the runner reports and
          retries, so the event waits for the fix instead of being dropped.
        """
        logger = self.logger
        try:
            record = build_record(request, event_type, installation=self.installation)
        except InvalidRequest as error:
            logger.error('Not storing the event: %s', error)
            return BackgroundResponse.fail(output=str(error))

        try:
            settings = load_settings(self.config)
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
        return _task_result(record, stores, outcomes, settings, logger)

    @classmethod
    async def on_startup(cls, logger: logging.LoggerAdapter, config: Mapping[str, Any]) -> None:
        """Check storage early so that problems show in the logs before the first event."""
        try:
            settings = load_settings(config)
        except ConfigurationError as error:
            logger.error('Configuration problem: %s', error)
            return
        for store in stores_for(settings):
            try:
                await within(store.ping(), settings.storage_timeout, store.describe())
                logger.info('Storage ready: %s', store.describe())
            except ConfigurationError as error:
                logger.error('Configuration problem: %s', error)
            except Exception as error:  # noqa: BLE001 - events will be rescheduled until it is up
                logger.warning('Storage %s not reachable yet: %s', store.describe(), error)

    @classmethod
    async def on_shutdown(cls, logger: logging.LoggerAdapter, config: Mapping[str, Any]) -> None:
        await close_all()
        logger.info('Storage connections closed')


async def _save(store: EventStore, record: EventRecord, timeout: float) -> int:
    return await within(store.save(record), timeout, store.describe())


def task_result_of(error: BaseException) -> str:
    """What an error makes of the event (see errors.py); anything unforeseen is raised."""
    return error.task_result if isinstance(error, ExtensionError) else RAISE


def _task_result(
    record: EventRecord,
    stores: List[EventStore],
    outcomes: List[Any],
    settings: Settings,
    logger: logging.LoggerAdapter,
) -> BackgroundResponse:
    """`fail` if a store cannot keep the record, raise what no retry fixes by itself,
    `reschedule` if a store was unavailable, else `done`."""
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    for store, outcome in zip(stores, outcomes):
        if not isinstance(outcome, BaseException):
            logger.info('Stored %s in %s (delivery %d)', record.key, store.describe(), outcome)
    by_result = {result: [error for error in failures if task_result_of(error) == result]
                 for result in (FAIL, RAISE, RESCHEDULE)}
    if by_result[FAIL]:
        error = by_result[FAIL][0]
        logger.error('Storage cannot keep event %s: %s', record.key, error)
        return BackgroundResponse.fail(output=str(error))
    if by_result[RAISE]:
        error = by_result[RAISE][0]
        if isinstance(error, ConfigurationError):
            logger.error('Configuration problem, event %s not stored yet: %s', record.key, error)
        elif isinstance(error, StorageRejected):
            logger.error('Storage refused event %s: %s', record.key, error)
        raise error
    if by_result[RESCHEDULE]:
        for error in by_result[RESCHEDULE]:
            logger.warning(
                'Event %s rescheduled in %ds: %s', record.key, settings.retry_countdown, error,
            )
        return BackgroundResponse.reschedule(countdown=settings.retry_countdown)
    return BackgroundResponse.done()
