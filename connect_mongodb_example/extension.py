"""The Connect events application: every purchase-request event is stored in every backend,
each installation's status is kept beside its events, and a schedulable job carries out the
data lifecycle (purges after uninstalls, retention).

Read top to bottom: the events it subscribes to, then what one event goes through (build
the record, check every store can keep it, save it everywhere, pick the task result), then
installation status changes and the data lifecycle job.
"""
import asyncio
import logging
from typing import Any, Dict, List, Mapping

from connect.eaas.core.decorators import event, schedulable, variables
from connect.eaas.core.enums import ResultType
from connect.eaas.core.extension import EventsApplicationBase
from connect.eaas.core.responses import BackgroundResponse, ScheduledExecutionResponse

from connect_mongodb_example.data_lifecycle import (
    LifecycleSummary,
    plan_run,
    run_lifecycle,
    scheduled_installation,
)
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
from connect_mongodb_example.event_record import EventType, build_record
from connect_mongodb_example.installation_events import (
    INSTALLATION_STATUS_CHANGE,
    installation_record,
    with_policy,
)
from connect_mongodb_example.installation_record import UNINSTALLED, InstallationRecord
from connect_mongodb_example.settings import Settings, load_settings, variable_declarations
from connect_mongodb_example.storage.registry import close_all, in_use, release, stores_for

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
                *(within(store.save(record), settings.storage_timeout, store.describe())
                  for store in stores),
                return_exceptions=True,
            )
        for store, outcome in zip(stores, outcomes):
            if not isinstance(outcome, BaseException):
                logger.info('Stored %s in %s (delivery %d)', record.key, store.describe(), outcome)
        return _task_result(f'event {record.key}', outcomes, settings, logger)

    @event(INSTALLATION_STATUS_CHANGE.name, statuses=list(INSTALLATION_STATUS_CHANGE.statuses))
    async def handle_installation_status_change(
        self, request: Dict[str, Any],
    ) -> BackgroundResponse:
        """Keep the installation's new status in every store, with the purge the uninstall
        policy calls for (see installation_events.py); task results as for events: `fail`
        for an installation object that cannot be kept, `reschedule` while a store is
        unavailable, configuration errors raised."""
        logger = self.logger
        try:
            record = installation_record(request)
        except InvalidRequest as error:
            logger.error('Not storing the installation status change: %s', error)
            return BackgroundResponse.fail(output=str(error))
        subject = f'installation {record.installation_id} {record.status}'
        try:
            settings = load_settings(self.config)
        except ConfigurationError as error:
            logger.error('Configuration problem, %s not stored yet: %s', subject, error)
            raise
        record = with_policy(record, settings)
        stores = stores_for(settings, record.installation_id)
        async with in_use(stores):
            outcomes = await asyncio.gather(
                *(within(store.save_installation(record), settings.storage_timeout,
                         store.describe())
                  for store in stores),
                return_exceptions=True,
            )
        response = _task_result(subject, outcomes, settings, logger)
        if response.status == ResultType.SUCCESS:
            _log_installation(record, outcomes[0], logger)
        return response

    @schedulable(
        'Data lifecycle',
        'Purges the events of installations uninstalled under ON_UNINSTALL=purge once '
        'PURGE_GRACE_DAYS have passed, and deletes events older than EVENTS_RETENTION_DAYS, '
        'in every configured store. Parameter: none for every installation, or '
        '{"installation_id": "EIN-..."} for one.',
    )
    async def run_data_lifecycle(self, schedule: Dict[str, Any]) -> ScheduledExecutionResponse:
        """Run the data lifecycle job (data_lifecycle.py) once; its summary is the task
        output. `fail` when the parameter is malformed, the configuration is wrong or a store
        stopped it (the next run resumes: the job keeps no state of its own); an unforeseen
        error is raised, which the runner reports for Connect to retry."""
        logger = self.logger
        try:
            installation_id = scheduled_installation(schedule)
        except InvalidRequest as error:
            logger.error('Data lifecycle not run: %s', error)
            return ScheduledExecutionResponse.fail(output=str(error))
        try:
            settings = load_settings(self.config)
        except ConfigurationError as error:
            logger.error('Configuration problem, data lifecycle not run: %s', error)
            return ScheduledExecutionResponse.fail(output=f'Configuration problem: {error}')
        stores = stores_for(settings)
        async with in_use(stores):
            summary = await run_lifecycle(stores, plan_run(settings, installation_id), logger)
        return _scheduled_result(summary, logger)

    @classmethod
    async def on_startup(cls, logger: logging.LoggerAdapter, config: Mapping[str, Any]) -> None:
        """Check storage early so that problems show in the logs before the first event.

        The runner calls this once per runner, in whichever of its events workers (background
        or interactive) is set up first, and that one may never store an event: the
        connections the check opened are closed again, and reopened on demand.
        """
        try:
            settings = load_settings(config)
        except ConfigurationError as error:
            logger.error('Configuration problem: %s', error)
            return
        stores = stores_for(settings)
        for store in stores:
            try:
                await within(store.ping(), settings.storage_timeout, store.describe())
                logger.info('Storage ready: %s', store.describe())
            except ConfigurationError as error:
                logger.error('Configuration problem: %s', error)
            except Exception as error:  # noqa: BLE001 - events will be rescheduled until it is up
                logger.warning('Storage %s not reachable yet: %s', store.describe(), error)
        await release(stores)

    @classmethod
    async def on_shutdown(cls, logger: logging.LoggerAdapter, config: Mapping[str, Any]) -> None:
        await close_all()
        logger.info('Storage connections closed')


def task_result_of(error: BaseException) -> str:
    """What an error makes of the event (see errors.py); anything unforeseen is raised."""
    return error.task_result if isinstance(error, ExtensionError) else RAISE


def _task_result(
    subject: str,
    outcomes: List[Any],
    settings: Settings,
    logger: logging.LoggerAdapter,
) -> BackgroundResponse:
    """`fail` if a store cannot keep what was saved (`subject`, e.g. "event <key>"), raise
    what no retry fixes by itself, `reschedule` if a store was unavailable, else `done`."""
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    by_result = {result: [error for error in failures if task_result_of(error) == result]
                 for result in (FAIL, RAISE, RESCHEDULE)}
    if by_result[FAIL]:
        error = by_result[FAIL][0]
        logger.error('Storage cannot keep %s: %s', subject, error)
        return BackgroundResponse.fail(output=str(error))
    if by_result[RAISE]:
        error = by_result[RAISE][0]
        if isinstance(error, ConfigurationError):
            logger.error('Configuration problem, %s not stored yet: %s', subject, error)
        elif isinstance(error, StorageRejected):
            logger.error('Storage refused %s: %s', subject, error)
        raise error
    if by_result[RESCHEDULE]:
        for error in by_result[RESCHEDULE]:
            logger.warning('Storage unavailable, %s rescheduled in %ds: %s',
                           subject, settings.retry_countdown, error)
        return BackgroundResponse.reschedule(countdown=settings.retry_countdown)
    return BackgroundResponse.done()


def _log_installation(
    saved: InstallationRecord, stored: InstallationRecord, logger: logging.LoggerAdapter,
) -> None:
    """Say in plain words what the change means for the installation's events."""
    change = f'Installation {saved.installation_id} {saved.status}'
    if stored.changed_at > saved.changed_at:
        logger.info('%s at %s: a later change is already stored (%s at %s), which stands',
                    change, _day(saved.changed_at), stored.status, _day(stored.changed_at))
    elif saved.purge_after is not None:
        logger.info('%s; its events will be purged after %s', change, _day(saved.purge_after))
    elif saved.status == UNINSTALLED:
        logger.info('%s; its events are kept (ON_UNINSTALL=keep)', change)
    else:
        logger.info('%s (account %s); no purge is planned for its events',
                    change, saved.account_id or 'unknown')


def _scheduled_result(
    summary: LifecycleSummary, logger: logging.LoggerAdapter,
) -> ScheduledExecutionResponse:
    """`done` with the summary as output, `fail` with it when a store stopped the run, the
    error raised when it is not one the application foresees."""
    text = summary.describe()
    errors = summary.errors
    if not errors:
        logger.info('%s', text)
        # `done()` takes no output; the summary is what the task shows in Connect.
        return ScheduledExecutionResponse(ResultType.SUCCESS, output=text)
    logger.error('%s', text)
    unforeseen = [error for error in errors if not isinstance(error, ExtensionError)]
    if unforeseen:
        raise unforeseen[0]
    return ScheduledExecutionResponse.fail(output=text)


def _day(moment: Any) -> str:
    return moment.isoformat(timespec='seconds').replace('+00:00', 'Z')
