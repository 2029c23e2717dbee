"""The web application: each installation's stored events, read back as JSON, and the page
that shows them (`static/`, declared as the "Events" module page).

Every answer is scoped to the installation of the call context, which Connect's gateway sets
(`X-Connect-Installation-Id`, read through eaas-core's injection): never to a query
parameter or a body, so no caller can read another installation's events. Reads come from
the first backend of STORAGE_BACKENDS.
"""
import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, Mapping, Optional

from connect.eaas.core.decorators import module_pages, router, variables, web_app
from connect.eaas.core.extension import WebApplicationBase
from connect.eaas.core.inject.common import get_call_context, get_config
from connect.eaas.core.inject.models import Context
from fastapi import Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from connect_mongodb_example.errors import (
    ConfigurationError,
    ExtensionError,
    InvalidRequest,
    StorageRejected,
    StorageUnavailable,
    first_line,
    within,
)
from connect_mongodb_example.event_views import content_range, listed_event, timeline_entry
from connect_mongodb_example.extension import StatefulEventsApplication
from connect_mongodb_example.settings import Settings, load_settings, variable_declarations
from connect_mongodb_example.storage.base import EventFilter, EventStore
from connect_mongodb_example.storage.registry import close_all, in_use, stores_for

logger = logging.getLogger(__name__)

INSTALLATION_HEADER = 'X-Connect-Installation-Id'
#: Every status of every event the events application subscribes to, so that an event type a
#: fork adds can be filtered on with no change here.
STATUSES = tuple(dict.fromkeys(
    status for declared in StatefulEventsApplication.get_events()
    for status in declared['statuses']
))
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
#: The longest reason the storage view gives for a backend that does not answer.
MAX_REASON_LENGTH = 200


def caller_installation(
    request: Request, context: Context = Depends(get_call_context),
) -> str:
    """The installation of the call context; a call without exactly one is refused (400)."""
    if len(request.headers.getlist(INSTALLATION_HEADER)) > 1:
        raise HTTPException(400, f'the call context names several installations '
                                 f'({INSTALLATION_HEADER} given more than once)')
    installation_id = (context.installation_id or '').strip()
    if not installation_id:
        raise HTTPException(400, f'no installation in the call context ({INSTALLATION_HEADER}): '
                                 'events are only shown to an installation of the extension')
    return installation_id


@web_app(router)
@module_pages('Events', '/static/index.html')
@variables(variable_declarations())
class EventsWebApplication(WebApplicationBase):
    """Serves the stored events; storage clients are per process, as for the events app."""

    installation_id: str = Depends(caller_installation)
    config: Dict[str, Any] = Depends(get_config)

    @classmethod
    async def on_shutdown(cls, logger: logging.LoggerAdapter, config: Mapping[str, Any]) -> None:
        await close_all()

    @router.get('/events', summary="The installation's events, newest first")
    async def list_events(
        self,
        status: Optional[str] = Query(None, description='only events of this status'),
        request_id: Optional[str] = Query(None, description='only events of this request'),
        limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
        offset: int = Query(0, ge=0),
    ) -> JSONResponse:
        where = EventFilter(
            self.installation_id, status=_checked_status(status),
            request_id=(request_id or '').strip() or None,
        )
        async with self._reading() as (store, timeout):
            records, total = await within(asyncio.gather(
                store.list_events(where, limit=limit, offset=offset),
                store.count_events(where),
            ), timeout, store.describe())
        # A response, not a return value: FastAPI would validate every item again (ms a page).
        return JSONResponse(
            [listed_event(record) for record in records],
            headers={'Content-Range': content_range(offset, len(records), total)},
        )

    @router.get('/requests/{request_id}/timeline', summary='Every status a request went through')
    async def request_timeline(self, request_id: str) -> JSONResponse:
        async with self._reading() as (store, timeout):
            records = await within(
                store.find(request_id, installation_id=self.installation_id), timeout,
                store.describe(),
            )
        # The same answer whether another installation has this request or nobody has.
        if not records:
            raise HTTPException(404, f'this installation has no event of request {request_id}')
        return JSONResponse({
            'request_id': request_id, 'events': [timeline_entry(record) for record in records],
        })

    @router.get('/storage', summary='The configured backends, and whether they answer')
    async def storage_health(self) -> Dict[str, Any]:
        settings = self._settings()
        stores = stores_for(settings, self.installation_id)
        async with in_use(stores):
            reports = await asyncio.gather(*(_health(store, settings) for store in stores))
        return {'reads_from': stores[0].name, 'backends': list(reports)}

    def _settings(self) -> Settings:
        try:
            return load_settings(self.config)
        except ConfigurationError as error:
            # Names the variable, never a secure value.
            raise HTTPException(503, f'configuration problem: {error}') from None

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[Any]:
        """(The store reads come from, the storage timeout); storage errors become 5xx."""
        settings = self._settings()
        # The installation's stores: when its settings change, the old ones are closed once
        # no read uses them (the web worker is a process of its own).
        stores = stores_for(settings, self.installation_id)
        store = stores[0]
        try:
            async with in_use(stores):
                yield store, settings.storage_timeout
        except ExtensionError as error:
            # Every error a read can raise has its status in errors.py; the stores' messages
            # name the variable at fault and never carry a secret.
            passing = isinstance(error, (StorageUnavailable, InvalidRequest))
            level = logging.WARNING if passing else logging.ERROR
            logger.log(level, 'Reading events: %s', error)
            detail = str(error)
            if isinstance(error, ConfigurationError):
                detail = f'configuration problem: {detail}'
            raise HTTPException(error.http_status, detail) from None


def _checked_status(status: Optional[str]) -> Optional[str]:
    status = (status or '').strip()
    if not status:
        return None
    if status not in STATUSES:
        raise HTTPException(400, f'status must be one of {", ".join(STATUSES)}, '
                                 f'got {status[:40]!r}')
    return status


def _short_reason(message: str, description: str) -> str:
    """The reason a store gave, without the description the view shows beside it, and no
    longer than a line (driver messages can carry a whole topology dump)."""
    message = message.replace(f'{description}: ', '').replace(f'{description} ', '').strip()
    if len(message) > MAX_REASON_LENGTH:
        message = message[:MAX_REASON_LENGTH - 1].rstrip() + '…'
    return message


async def _health(store: EventStore, settings: Settings) -> Dict[str, Any]:
    """One backend as the storage view shows it: where it is (no secrets) and if it answers."""
    error: Optional[str] = None
    try:
        await within(store.ping(), settings.storage_timeout, store.describe())
    except (StorageUnavailable, StorageRejected, ConfigurationError) as problem:
        # The stores' messages are made to be logged: they never carry a password or key.
        error = _short_reason(first_line(problem), store.describe())
    except Exception as problem:  # noqa: BLE001 - anything else is shown by its type only
        error = type(problem).__name__
    return {'name': store.name, 'description': store.describe(), 'reachable': error is None,
            'error': error}
