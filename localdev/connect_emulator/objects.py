"""The Connect objects the emulation serves: purchase requests, installations, schedules.

A request is kept in the state of the last event delivered about it, as the Connect API
would return it while that event is being processed. An installation is kept as the first
event naming it describes it; from its first status change on, its `status` and `events`
(`installed`, `uninstalled`, `updated`, each with the time `at`) are the emulation's, as
Connect's are: a later event file naming it does not reset them.
"""
import copy
import re
import warnings
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Set

with warnings.catch_warnings():
    # lark-parser 0.11, which lib-rql pins, imports the deprecated sre_* modules.
    warnings.simplefilter('ignore', DeprecationWarning)
    from lark.exceptions import LarkError
    from py_rql.exceptions import RQLFilterError
    from py_rql.filter_cls import FilterClass


class RequestFilter(FilterClass):
    """The request fields RQL filters may name (Connect allows more; these cover events)."""

    FILTERS = [
        {'filter': name} for name in (
            'id', 'type', 'status', 'created', 'updated',
            'asset.id', 'asset.external_id', 'asset.product.id', 'asset.connection.type',
            'asset.connection.provider.id', 'asset.connection.vendor.id',
            'asset.connection.hub.id', 'asset.tiers.customer.id', 'marketplace.id',
            'contract.id',
        )
    ]


class InstallationFilter(FilterClass):
    """The installation fields RQL filters may name."""

    FILTERS = [{'filter': name} for name in ('id', 'status', 'owner.id', 'environment.id')]


#: `eq(id,X)` alone, or as the first term of the top-level `and(...)`.
PINNED_ID = re.compile(r'^(?:and\()?eq\(id,([^,()\'"]+)\)(?:,|$)')
#: Connect's times: ISO 8601, UTC. Milliseconds, so that two changes of one installation
#: made within a second still tell which came last.
TIME_PRECISION = 'milliseconds'


class FilterError(ValueError):
    """An RQL filter the emulation cannot evaluate."""


def connect_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec=TIME_PRECISION)


class ConnectObjects:
    def __init__(self) -> None:
        self._requests: Dict[str, Dict[str, Any]] = {}
        self._installations: Dict[str, Dict[str, Any]] = {}
        self._schedules: Dict[str, Dict[str, Any]] = {}
        #: Installations whose status and events the emulation owns (see the docstring).
        self._status_owned: Set[str] = set()
        self._last_change: Optional[datetime] = None
        self._request_filter = RequestFilter()
        self._installation_filter = InstallationFilter()

    # -- requests ---------------------------------------------------------------------------

    def put_request(self, request: Dict[str, Any]) -> None:
        # A copy: the caller's event must not change under the server's feet.
        self._requests[request['id']] = copy.deepcopy(request)

    def request(self, request_id: str) -> Optional[Dict[str, Any]]:
        return self._requests.get(request_id)

    def find_requests(self, rql: str) -> List[Dict[str, Any]]:
        """The requests matching an RQL filter ('' matches all), in insertion order."""
        return _find(self._requests, self._request_filter, rql, 'requests')

    # -- installations ----------------------------------------------------------------------

    def put_installation(self, installation: Dict[str, Any]) -> None:
        """An installation as an event file describes it; once it has changed status, its
        status and events stay the emulation's."""
        installation = copy.deepcopy(installation)
        known = self._installations.get(installation['id'])
        if known is not None and installation['id'] in self._status_owned:
            installation.update(status=known['status'], events=known['events'])
        self._installations[installation['id']] = installation

    def change_installation_status(
        self, installation: Dict[str, Any], status: str,
    ) -> Dict[str, Any]:
        """The installation (the known one, else `installation`) reaches `status` now: its
        `status`, `events.<status>.at` and `events.updated.at` change, as Connect records
        it. Returns a copy of it as it is now."""
        known = self._installations.get(installation['id'])
        changed = copy.deepcopy(known if known is not None else installation)
        at = connect_time(self._next_change_time())
        events = dict(changed.get('events') or {})
        events[status] = {'at': at}
        events['updated'] = {'at': at}
        changed.update(status=status, events=events)
        self._installations[changed['id']] = changed
        self._status_owned.add(changed['id'])
        return copy.deepcopy(changed)

    def installation(self, installation_id: str) -> Optional[Dict[str, Any]]:
        return self._installations.get(installation_id)

    def installations(self) -> List[Dict[str, Any]]:
        return list(self._installations.values())

    def find_installations(self, rql: str) -> List[Dict[str, Any]]:
        return _find(self._installations, self._installation_filter, rql, 'installations')

    def _next_change_time(self) -> datetime:
        """Now, but always after the previous change, at the precision times are shown."""
        now = datetime.now(timezone.utc)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self._last_change is not None and now <= self._last_change:
            now = self._last_change + timedelta(milliseconds=1)
        self._last_change = now
        return now

    # -- schedules --------------------------------------------------------------------------

    def put_schedule(self, schedule: Dict[str, Any]) -> None:
        self._schedules[schedule['id']] = copy.deepcopy(schedule)

    def schedule(self, schedule_id: str) -> Optional[Dict[str, Any]]:
        return self._schedules.get(schedule_id)

    def schedules(self) -> List[Dict[str, Any]]:
        return list(self._schedules.values())


def _find(
    collection: Dict[str, Dict[str, Any]], rql_filter: FilterClass, rql: str, name: str,
) -> List[Dict[str, Any]]:
    """The objects matching an RQL filter ('' matches all), in insertion order."""
    if not rql:
        return list(collection.values())
    pinned = PINNED_ID.match(rql)
    if pinned:
        # The filter requires this id (the runner's per-task count): only that object can
        # match, so a run with many objects does not evaluate RQL on all of them.
        found = collection.get(pinned.group(1))
        candidates = [found] if found is not None else []
    else:
        candidates = list(collection.values())
    try:
        return list(rql_filter.filter(rql, candidates))
    except (RQLFilterError, LarkError) as error:
        fields = ', '.join(item['filter'] for item in rql_filter.FILTERS)
        raise FilterError(
            f'cannot evaluate RQL filter {rql!r} ({_reason(error)}); '
            f'the emulation filters {name} on: {fields}',
        ) from None


def _reason(error: Exception) -> str:
    details = getattr(error, 'details', None)
    if details:
        return str(details.get('error', details))
    cause = getattr(error, 'orig_exc', None)
    if isinstance(cause, KeyError):
        return f'unknown field {cause.args[0]}'
    return type(error).__name__
