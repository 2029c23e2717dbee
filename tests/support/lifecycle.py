"""Installation objects and schedules as Connect sends them, delivered the way the runner
does (a new application instance per task), and what a test compares stores by."""
import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Mapping, Optional, Tuple

from connect.eaas.core.responses import BackgroundResponse, ScheduledExecutionResponse

from connect_mongodb_example.extension import StatefulEventsApplication
from connect_mongodb_example.storage.base import EventFilter, EventStore
from tests.support.records import purchase_record
from tests.support.requests import purchase_request

ENVIRONMENT = 'ENV-8436-7221-01'
STATUSES = ('pending', 'approved', 'failed')
#: A bound on one task in a test: a hang is a failure, not a stuck suite (no timing claim).
TASK_BOUND_SECONDS = 120


def connect_time(moment: datetime) -> str:
    """A time as Connect writes it."""
    return moment.astimezone(timezone.utc).isoformat(timespec='seconds')


def installation_object(
    installation_id: str = 'EIN-8436-7221-1234',
    status: str = 'installed',
    at: Optional[datetime] = None,
    *,
    installed_at: Optional[datetime] = None,
    account_id: str = 'VA-000-001',
) -> Dict[str, Any]:
    """An installation as the runner passes it to `installation_status_change`: reached
    `status` at `at` (now by default), first installed at `installed_at`."""
    at = at or datetime.now(timezone.utc)
    installed_at = installed_at or (at if status == 'installed' else at - timedelta(days=90))
    by = {'id': 'UR-000-000-001', 'name': 'Jane Admin'}
    events = {'installed': {'at': connect_time(installed_at), 'by': by},
              'updated': {'at': connect_time(at)}}
    if status == 'uninstalled':
        events['uninstalled'] = {'at': connect_time(at), 'by': by}
    return {
        'id': installation_id,
        'environment': {'id': ENVIRONMENT, 'type': 'production',
                        'extension': {'id': 'SRVC-8436-7221', 'name': 'Stateful events'}},
        'owner': {'id': account_id, 'name': 'Vendor One', 'role': 'vendor'},
        'settings': {},
        'events': events,
        'status': status,
    }


def schedule_object(parameter: Any = None) -> Dict[str, Any]:
    """A DevOps schedule as the runner fetches it (managers/scheduled.py) and passes it to
    the schedulable method."""
    schedule: Dict[str, Any] = {
        'id': 'EFS-8436-7221-01-0001',
        'name': 'Data lifecycle, daily',
        'description': 'Purges and retention',
        'method': 'run_data_lifecycle',
        'trigger': {'type': 'recurring', 'start': '2026-01-01T03:00:00+00:00',
                    'unit': 'days', 'amount': 1},
        'environment': {'id': ENVIRONMENT, 'type': 'production'},
        'status': 'pending',
    }
    if parameter is not None:
        schedule['parameter'] = parameter
    return schedule


def new_task_app(config: Mapping[str, Any], logger: Any) -> StatefulEventsApplication:
    return StatefulEventsApplication(client=None, logger=logger, config=dict(config))


async def deliver_installation(
    installation: Any, config: Mapping[str, Any], logger: Any,
) -> BackgroundResponse:
    """One `installation_status_change` task as the runner runs it."""
    app = new_task_app(config, logger)
    return await asyncio.wait_for(app.handle_installation_status_change(installation),
                                  TASK_BOUND_SECONDS)


async def run_schedule(
    config: Mapping[str, Any], logger: Any, parameter: Any = None,
) -> ScheduledExecutionResponse:
    """One run of the data lifecycle schedule as the runner runs it (no installation)."""
    app = new_task_app(config, logger)
    return await asyncio.wait_for(app.run_data_lifecycle(schedule_object(parameter)),
                                  TASK_BOUND_SECONDS)


async def fill(
    store: EventStore, installation_id: Optional[str], received_at: List[datetime],
    first: int = 0,
) -> List[str]:
    """One event of the installation (None: of none) per time, statuses in turn, requests
    numbered from `first`; their keys."""
    keys = []
    for number, moment in enumerate(received_at, start=first):
        request = purchase_request(f'PR-{number:04d}-{installation_id or "none"}',
                                   status=STATUSES[number % len(STATUSES)])
        record = purchase_record(
            request, installation={'id': installation_id} if installation_id else None,
            received_at=moment)
        await store.save(record)
        keys.append(record.key)
    return keys


async def stored_keys(store: EventStore, installation_id: str) -> List[str]:
    listed = await store.list_events(EventFilter(installation_id), limit=100_000)
    return sorted(record.key for record in listed)


async def unowned_keys(store: EventStore, count: int) -> List[str]:
    """The keys of the first `count` events `fill` gave no installation, those still stored."""
    return sorted([record.key for number in range(count)
                   for record in await store.find(f'PR-{number:04d}-none')])


async def counts(store: EventStore, installation_id: str) -> Tuple[int, ...]:
    """The installation's count, then its count per status, as the Events page reads them."""
    return tuple([await store.count_events(EventFilter(installation_id))] + [
        await store.count_events(EventFilter(installation_id, status=status))
        for status in STATUSES])


async def counted(store: EventStore, installation_id: str) -> Tuple[int, ...]:
    """What `counts` must say: the listed events, by status."""
    listed = await store.list_events(EventFilter(installation_id), limit=100_000)
    return tuple([len(listed)] + [sum(1 for record in listed if record.status == status)
                                  for status in STATUSES])
