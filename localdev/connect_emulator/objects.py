"""The Connect objects the emulation serves: purchase requests and installations.

A request is kept in the state of the last event delivered about it, as the Connect API
would return it while that event is being processed.
"""
import copy
import re
import warnings
from typing import Any, Dict, List, Optional

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


#: `eq(id,X)` alone, or as the first term of the top-level `and(...)`.
PINNED_ID = re.compile(r'^(?:and\()?eq\(id,([^,()\'"]+)\)(?:,|$)')


class FilterError(ValueError):
    """An RQL filter the emulation cannot evaluate."""


class ConnectObjects:
    def __init__(self) -> None:
        self._requests: Dict[str, Dict[str, Any]] = {}
        self._installations: Dict[str, Dict[str, Any]] = {}
        self._filter = RequestFilter()

    def put_request(self, request: Dict[str, Any]) -> None:
        # A copy: the caller's event must not change under the server's feet.
        self._requests[request['id']] = copy.deepcopy(request)

    def put_installation(self, installation: Dict[str, Any]) -> None:
        self._installations[installation['id']] = copy.deepcopy(installation)

    def request(self, request_id: str) -> Optional[Dict[str, Any]]:
        return self._requests.get(request_id)

    def installation(self, installation_id: str) -> Optional[Dict[str, Any]]:
        return self._installations.get(installation_id)

    def installations(self) -> List[Dict[str, Any]]:
        return list(self._installations.values())

    def find_requests(self, rql: str) -> List[Dict[str, Any]]:
        """The requests matching an RQL filter ('' matches all), in insertion order."""
        if not rql:
            return list(self._requests.values())
        pinned = PINNED_ID.match(rql)
        if pinned:
            # The filter requires this id (the runner's per-task count): only that request
            # can match, so a run with many requests does not evaluate RQL on all of them.
            found = self._requests.get(pinned.group(1))
            requests = [found] if found is not None else []
        else:
            requests = list(self._requests.values())
        try:
            return list(self._filter.filter(rql, requests))
        except (RQLFilterError, LarkError) as error:
            fields = ', '.join(item['filter'] for item in RequestFilter.FILTERS)
            raise FilterError(
                f'cannot evaluate RQL filter {rql!r} ({_reason(error)}); '
                f'the emulation filters requests on: {fields}',
            ) from None


def _reason(error: Exception) -> str:
    details = getattr(error, 'details', None)
    if details:
        return str(details.get('error', details))
    cause = getattr(error, 'orig_exc', None)
    if isinstance(cause, KeyError):
        return f'unknown field {cause.args[0]}'
    return type(error).__name__
