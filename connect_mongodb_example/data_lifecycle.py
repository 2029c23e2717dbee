"""The data lifecycle job: the purges due after uninstalls, then retention.

For each configured store, independently:

1. every installation whose purge is due (uninstalled under `ON_UNINSTALL=purge`, its
   `purge_after` passed, not purged since) loses its events, batch after batch. The
   installation's record is read again after each batch: a reinstall meanwhile stops the
   purge, and what is left stays. Once none is left, the record is marked purged;
2. with `EVENTS_RETENTION_DAYS` set, the events first received before now minus that many
   days are deleted, batch after batch, whoever they belong to.

The job keeps no state of its own: what is due is read from the stores, so any number of
runs may go at once (they share the deletes, each counting only what it deleted), and a run
stopped at any moment leaves nothing half done that the next run does not finish.
"""
import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Awaitable, List, Optional, Sequence, Tuple, TypeVar

from connect_mongodb_example.errors import InvalidRequest, first_line, within
from connect_mongodb_example.event_record import utcnow
from connect_mongodb_example.installation_record import UNINSTALLED, InstallationRecord
from connect_mongodb_example.settings import Settings
from connect_mongodb_example.storage.base import EventFilter, EventStore

T = TypeVar('T')

#: Installations named in one line of the output at most (the output is a task message).
SHOWN_IDS = 10
PARAMETER_EXAMPLE = '{"installation_id": "EIN-..."}'


@dataclass(frozen=True)
class Plan:
    """What one run does, decided once when it starts."""

    #: The run's time: purges due by then are carried out, and only events received before
    #: it are purged, so that a reinstall during the run cannot lose its new events.
    now: datetime
    #: Events first received before this are deleted; None: retention is off.
    retention_cutoff: Optional[datetime]
    #: Only this installation's purge and retention; None: every installation's.
    installation_id: Optional[str]
    #: The storage timeout of each call to a store.
    timeout: float


@dataclass
class StoreSummary:
    """What one run did in one store."""

    store: str
    #: Purges found due when the run started.
    due: int = 0
    #: Installations whose purge this run saw finished.
    purged: List[str] = field(default_factory=list)
    #: Events this run deleted for purges.
    purge_deleted: int = 0
    #: (installation, why) of purges this run stopped or left to the next run.
    stopped: List[Tuple[str, str]] = field(default_factory=list)
    #: Events this run deleted for retention.
    retention_deleted: int = 0
    #: What stopped the run in this store, if anything did.
    error: Optional[BaseException] = None

    def describe(self) -> str:
        parts = []
        if self.purged:
            parts.append(f'purged {_count(len(self.purged), "installation")} '
                         f'({_ids(self.purged)})')
        if self.due:
            parts.append(f'{_count(self.purge_deleted, "event")} deleted by purges')
        parts.extend(f'purge of {installation_id} {why}' for installation_id, why
                     in self.stopped[:SHOWN_IDS])
        if len(self.stopped) > SHOWN_IDS:
            parts.append(f'{len(self.stopped) - SHOWN_IDS} more purges not finished')
        if not self.due:
            parts.append('no purge due')
        parts.append(f'{_count(self.retention_deleted, "event")} deleted by retention')
        if self.error is not None:
            parts.append(f'stopped by an error, the next run resumes: {first_line(self.error)}')
        return f'{self.store}: ' + '; '.join(parts) + '.'


@dataclass
class LifecycleSummary:
    """What one run did, per store, for the task output and the logs."""

    plan: Plan
    stores: List[StoreSummary]
    #: The installation the run was asked about is recorded in no store: nothing was done.
    unknown_installation: bool = False

    @property
    def errors(self) -> List[BaseException]:
        return [store.error for store in self.stores if store.error is not None]

    def describe(self) -> str:
        plan = self.plan
        scope = (f'installation {plan.installation_id} only' if plan.installation_id
                 else 'every installation')
        head = f'Data lifecycle run at {_time(plan.now)}, {scope}'
        if self.unknown_installation:
            return (f'{head}: no store has a record of installation {plan.installation_id} '
                    '(it was not installed while this extension listened, or the id is '
                    'mistyped); nothing done.')
        retention = ('retention off (EVENTS_RETENTION_DAYS is 0)'
                     if plan.retention_cutoff is None
                     else f'retention: events first received before {_time(plan.retention_cutoff)}')
        return '\n'.join([f'{head}; {retention}.', *(store.describe() for store in self.stores)])


def plan_run(
    settings: Settings, installation_id: Optional[str] = None, now: Optional[datetime] = None,
) -> Plan:
    """The plan of a run starting `now` (the current time by default)."""
    # Whole milliseconds: the precision of MongoDB's dates, so that the cutoff means the
    # same in every backend.
    now = now or utcnow()
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    cutoff = (now - timedelta(days=settings.retention_days)
              if settings.retention_days else None)
    return Plan(now=now, retention_cutoff=cutoff, installation_id=installation_id,
                timeout=settings.storage_timeout)


async def run_lifecycle(
    stores: Sequence[EventStore], plan: Plan, logger: logging.LoggerAdapter,
) -> LifecycleSummary:
    """Carry out `plan` in every store at once; each store's error is kept in its summary,
    the others go on."""
    if plan.installation_id is not None and await _recorded_nowhere(stores, plan):
        return LifecycleSummary(plan, [], unknown_installation=True)
    summaries = await asyncio.gather(*(_run_store(store, plan, logger) for store in stores))
    return LifecycleSummary(plan, list(summaries))


def scheduled_installation(schedule: object) -> Optional[str]:
    """The installation a schedule's `parameter` names, None when it names none (every
    installation); `InvalidRequest` says what is wrong with a malformed one."""
    parameter = schedule.get('parameter') if isinstance(schedule, dict) else None
    if parameter in (None, '', {}):
        return None
    if not isinstance(parameter, dict):
        raise InvalidRequest(
            f"the schedule's parameter must be a JSON object such as {PARAMETER_EXAMPLE}, "
            f'or empty for every installation; got {type(parameter).__name__} {parameter!r:.80}')
    unknown = sorted(set(parameter) - {'installation_id'})
    if unknown:
        raise InvalidRequest(
            f"the schedule's parameter has unknown keys ({', '.join(map(repr, unknown))}); "
            f'the one it may have is installation_id, as in {PARAMETER_EXAMPLE}')
    installation_id = parameter['installation_id']
    if not isinstance(installation_id, str) or not installation_id.strip():
        raise InvalidRequest(
            f"the schedule's parameter installation_id must be an installation id such as "
            f'EIN-1234-5678-9012, got {installation_id!r:.80}')
    return installation_id.strip()


def purge_due(record: Optional[InstallationRecord], now: datetime) -> bool:
    """Whether the record calls for a purge by `now` that has not been carried out."""
    return (record is not None and record.status == UNINSTALLED
            and record.purge_after is not None and record.purge_after <= now
            and (record.purged_at is None or record.purged_at < record.purge_after))


async def _recorded_nowhere(stores: Sequence[EventStore], plan: Plan) -> bool:
    found = await asyncio.gather(
        *(_within(store, store.get_installation(plan.installation_id), plan)
          for store in stores),
        return_exceptions=True)
    # A store that failed to answer may have it: it reports its error in its own run.
    return all(record is None for record in found)


async def _run_store(
    store: EventStore, plan: Plan, logger: logging.LoggerAdapter,
) -> StoreSummary:
    summary = StoreSummary(store.describe())
    try:
        due = await _due_purges(store, plan)
        summary.due = len(due)
        for record in due:
            await _purge(store, record, plan, summary, logger)
        if plan.retention_cutoff is not None:
            await _retention(store, plan, summary)
    except Exception as error:  # noqa: BLE001 - kept in the summary; the task result says it
        summary.error = error
        logger.warning('Data lifecycle in %s stopped: %s', summary.store, first_line(error))
    return summary


async def _due_purges(store: EventStore, plan: Plan) -> List[InstallationRecord]:
    if plan.installation_id is not None:
        records = [await _within(store, store.get_installation(plan.installation_id), plan)]
    else:
        records = await _within(store, store.list_installations(), plan)
    due = [record for record in records if purge_due(record, plan.now)]
    return sorted(due, key=lambda record: (record.purge_after, record.installation_id))


async def _purge(
    store: EventStore, record: InstallationRecord, plan: Plan, summary: StoreSummary,
    logger: logging.LoggerAdapter,
) -> None:
    installation_id = record.installation_id
    logger.info('Purging the events of installation %s from %s: uninstalled at %s, purge '
                'due since %s', installation_id, summary.store, _time(record.changed_at),
                _time(record.purge_after))
    deleted_here = 0
    left_before: Optional[int] = None
    while True:
        deleted = await _within(store, store.delete_events(
            limit=store.delete_batch, installation_id=installation_id, received_before=plan.now),
            plan)
        deleted_here += deleted
        summary.purge_deleted += deleted
        current = await _within(store, store.get_installation(installation_id), plan)
        if not purge_due(current, plan.now):
            _not_due_any_longer(current, record, deleted_here, summary, logger)
            return
        if deleted:
            continue
        # None left that this run may delete. Some may be left all the same: in a batch
        # another run is deleting (which its transaction undoes if that run is stopped), or
        # received during this run. Try again while they go down; once they stop going down,
        # they are the next run's.
        left = await _within(store, store.count_events(EventFilter(installation_id)), plan)
        if not left:
            break
        if left_before is not None and left >= left_before:
            summary.stopped.append((installation_id, f'not finished: {_count(left, "event")} '
                                                     'left for the next run'))
            logger.info('Purge of installation %s in %s not finished: %d events left for '
                        'the next run', installation_id, summary.store, left)
            return
        left_before = left
    # The record read last, marked: a later change (a reinstall) stored meanwhile wins over
    # it, an equal one (this purge marked by another run) is replaced.
    await _within(store, store.save_installation(replace(current, purged_at=plan.now)), plan)
    summary.purged.append(installation_id)
    logger.info('Installation %s purged from %s: %d events deleted by this run',
                installation_id, summary.store, deleted_here)


def _not_due_any_longer(
    current: Optional[InstallationRecord], planned: InstallationRecord, deleted: int,
    summary: StoreSummary, logger: logging.LoggerAdapter,
) -> None:
    """Record why a purge under way stopped, or that another run finished it."""
    installation_id = planned.installation_id
    if (current is not None and current.purge_after == planned.purge_after
            and current.purged_at is not None):
        summary.purged.append(installation_id)
        logger.info('Installation %s purged from %s (finished by another run): %d events '
                    'deleted by this run', installation_id, summary.store, deleted)
        return
    if current is None or current.status != UNINSTALLED:
        why = 'stopped: the installation was reinstalled; what is left is kept'
    elif current.purge_after is None:
        why = 'stopped: uninstalled again with its events kept'
    else:
        why = f'stopped: now due at {_time(current.purge_after)}'
    summary.stopped.append((installation_id, why))
    logger.info('Purge of installation %s in %s %s (%d events deleted before)',
                installation_id, summary.store, why, deleted)


async def _retention(store: EventStore, plan: Plan, summary: StoreSummary) -> None:
    while True:
        deleted = await _within(store, store.delete_events(
            limit=store.delete_batch, installation_id=plan.installation_id,
            received_before=plan.retention_cutoff), plan)
        summary.retention_deleted += deleted
        if deleted == 0:
            return


def _within(store: EventStore, awaitable: Awaitable[T], plan: Plan) -> Awaitable[T]:
    return within(awaitable, plan.timeout, store.describe())


def _time(moment: Any) -> str:
    return moment.isoformat(timespec='milliseconds').replace('+00:00', 'Z')


def _count(number: int, noun: str) -> str:
    return f'{number} {noun}{"" if number == 1 else "s"}'


def _ids(ids: Sequence[str]) -> str:
    shown = ', '.join(ids[:SHOWN_IDS])
    return shown if len(ids) <= SHOWN_IDS else f'{shown} and {len(ids) - SHOWN_IDS} more'
