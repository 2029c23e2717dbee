"""The web application: each installation's stored events, read back as JSON or downloaded,
and the page that shows them (`static/`, declared as the "Events" module page).

Every answer is scoped to the installation of the call context, which Connect's gateway sets
(`X-Connect-Installation-Id`, read through eaas-core's injection): never to a query
parameter or a body, so no caller can read another installation's events. Reads come from
the first backend of STORAGE_BACKENDS. Whatever a caller sends is checked first
(`web_inputs`): a route answers 4xx naming the parameter, never 500.
"""
import asyncio
import logging
import re
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlencode

from connect.eaas.core.decorators import module_pages, router, variables, web_app
from connect.eaas.core.extension import WebApplicationBase
from fastapi import Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from connect_mongodb_example.errors import (
    ConfigurationError,
    ExtensionError,
    InvalidRequest,
    StorageRejected,
    StorageUnavailable,
    first_line,
    within,
)
from connect_mongodb_example.event_export import FORMATS, PART_EVENTS, read_part
from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.event_views import (
    content_range,
    iso_utc,
    link_header,
    listed_event,
    page_schema,
    timeline_entry,
)
from connect_mongodb_example.extension import StatefulEventsApplication
from connect_mongodb_example.installation_events import INSTALLATION_STATUS_CHANGE
from connect_mongodb_example.settings import Settings, load_settings, variable_declarations
from connect_mongodb_example.storage.base import EventFilter, EventStore, PageCursor
from connect_mongodb_example.storage.registry import close_all, in_use, stores_for
from connect_mongodb_example.web_inputs import (
    LENGTHS,
    caller_config,
    caller_installation,
    checked_text,
    decode_cursor,
    encode_cursor,
    refused,
)

logger = logging.getLogger(__name__)

#: Every status of every event the events application stores, so that an event type a fork
#: adds can be filtered on with no change here. Installation status changes are not events of
#: the page: they are kept as installation records.
STATUSES = tuple(dict.fromkeys(
    status for declared in StatefulEventsApplication.get_events()
    if declared['event_type'] != INSTALLATION_STATUS_CHANGE.name
    for status in declared['statuses']
))
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
#: Offset pages go this deep (what connect-ui-toolkit's FastAPI table adapter sends); past
#: it, a page is reached from the Link header's cursor, which costs the same at any depth.
MAX_OFFSET = 10_000
#: The longest reason the storage view gives for a backend that does not answer.
MAX_REASON_LENGTH = 200


@web_app(router)
@module_pages('Events', '/static/index.html')
@variables(variable_declarations())
class EventsWebApplication(WebApplicationBase):
    """Serves the stored events; storage clients are per process, as for the events app."""

    installation_id: str = Depends(caller_installation)
    config: Dict[str, Any] = Depends(caller_config)

    @classmethod
    async def on_shutdown(cls, logger: logging.LoggerAdapter, config: Mapping[str, Any]) -> None:
        await close_all()

    @router.get('/schema', summary='What the Events page shows: fields, columns, statuses')
    async def schema(self) -> Dict[str, Any]:
        return page_schema(STATUSES, FORMATS)

    @router.get('/events', summary="The installation's events, newest first")
    async def list_events(
        self,
        request: Request,
        status: Optional[str] = Query(None, description='only events of this status'),
        request_id: Optional[str] = Query(
            None, description='only events of the request with exactly this id'),
        limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
        offset: int = Query(0, ge=0, description=f'events skipped first, at most {MAX_OFFSET}'),
        after: Optional[str] = Query(None, description='the cursor of a Link rel="next"'),
        before: Optional[str] = Query(None, description='the cursor of a Link rel="prev"'),
    ) -> JSONResponse:
        where = self._filter(status, request_id)
        if offset > MAX_OFFSET:
            raise refused('offset', f'at most {MAX_OFFSET}; page on from there with the cursor '
                                    'of the Link header (after=...), as deep as you like')
        older, newer = decode_cursor('after', after), decode_cursor('before', before)
        if older and newer:
            raise refused('before', 'give after or before, not both')
        async with self._reading() as (store, timeout):
            # One more than the page: it tells whether there is a page beyond.
            records, total = await within(asyncio.gather(
                store.list_events(where, limit=limit + 1, after=older, before=newer,
                                  offset=offset),
                store.count_events(where),
            ), timeout, store.describe())
        page, links = _page_and_links(records, limit, coming_back=newer is not None,
                                      deep=bool(older or offset))
        headers = {'X-Total-Count': str(total)}
        if not (older or newer):
            headers['Content-Range'] = content_range(offset, len(page), total)
        if links:
            query = {'status': where.status, 'request_id': where.request_id, 'limit': limit}
            headers['Link'] = link_header([
                (relation, _url(request, {**query, side: encode_cursor(cursor)}))
                for relation, side, cursor in links])
        # A response, not a return value: FastAPI would validate every item again (ms a page).
        return JSONResponse([listed_event(record) for record in page], headers=headers)

    @router.get('/events/export', summary="The installation's events as a download, in parts")
    async def export_events(
        self,
        request: Request,
        format_name: str = Query('csv', alias='format', description=' or '.join(FORMATS)),
        limit: int = Query(PART_EVENTS, ge=1, le=PART_EVENTS,
                           description='most events in this part'),
        after: Optional[str] = Query(None, description='the cursor of a Link rel="next"'),
    ) -> Response:
        export = FORMATS.get(format_name)
        if export is None:  # never repeated: it may hold anything
            raise refused('format', f'one of {", ".join(FORMATS)}')
        start = decode_cursor('after', after)
        where = EventFilter(self.installation_id)
        async with self._reading() as (store, timeout):
            async def read(cursor: Optional[PageCursor], count: int) -> List[EventRecord]:
                return await within(store.list_events(where, limit=count, after=cursor,
                                                      full=True), timeout, store.describe())

            part = await read_part(read, export, start, max_events=limit)
        name = re.sub(r'[^A-Za-z0-9_-]', '_', self.installation_id)
        headers = {
            'Content-Disposition': f'attachment; filename="events-{name}.{export.name}"',
            'X-Export-Events': str(part.events),
        }
        if part.next_after:
            headers['Link'] = link_header([('next', _url(request, {
                'format': export.name, 'limit': limit, 'after': encode_cursor(part.next_after),
            }))])
        return Response(part.body, media_type=export.media_type, headers=headers)

    @router.get('/requests/{request_id}/timeline', summary='Every status a request went through')
    async def request_timeline(self, request_id: str) -> JSONResponse:
        # Not stripped: the path names the request exactly.
        checked_text('request_id', request_id, LENGTHS['request_id'])
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

    @router.get('/installation', summary="What happens to the installation's events, and when")
    async def installation(self) -> Dict[str, Any]:
        settings = self._settings()
        async with self._reading() as (store, timeout):
            record = await within(store.get_installation(self.installation_id), timeout,
                                  store.describe())
        due = record is not None and record.purge_after is not None and record.purged_at is None
        return {
            'installation_id': self.installation_id,
            'retention_days': settings.retention_days,
            'on_uninstall': settings.on_uninstall,
            'purge_grace_days': settings.purge_grace_days,
            'status': record.status if record else None,
            'changed_at': _time(record.changed_at) if record else None,
            'purge_after': _time(record.purge_after) if due else None,
            'purged_at': _time(record.purged_at) if record else None,
        }

    @router.get('/storage', summary='The configured backends, and whether they answer')
    async def storage_health(self) -> Dict[str, Any]:
        settings = self._settings()
        stores = stores_for(settings, self.installation_id)
        async with in_use(stores):
            reports = await asyncio.gather(*(_health(store, settings) for store in stores))
        return {'reads_from': stores[0].name, 'backends': list(reports)}

    def _filter(self, status: Optional[str], request_id: Optional[str]) -> EventFilter:
        """The caller's installation, narrowed by the filters; the request id is whole."""
        return EventFilter(
            self.installation_id, status=_checked_status(status),
            request_id=checked_text('request_id', request_id, LENGTHS['request_id']),
        )

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
    status = checked_text('status', status, LENGTHS['status'])
    if status is not None and status not in STATUSES:
        raise refused('status', f'one of {", ".join(STATUSES)}, got {status!r}')
    return status


Link = Tuple[str, str, PageCursor]  # (relation, the parameter that takes it, cursor)


def _page_and_links(
    records: List[EventRecord], limit: int, *, coming_back: bool, deep: bool,
) -> Tuple[List[EventRecord], List[Link]]:
    """The page among `records` (read with one more than `limit`), and its next and previous
    pages: after its last event, and before its first.

    Read forward (after a cursor, or from an offset), the extra record is the first of the
    next page; read backward (before a cursor), it is the last of the page before."""
    beyond = len(records) > limit
    if coming_back:
        page = records[-limit:] if beyond else records
        has_next, has_previous = bool(page), beyond
    else:
        page = records[:limit]
        has_next, has_previous = beyond, deep and bool(page)
    links: List[Link] = []
    if has_next:
        links.append(('next', 'after', PageCursor.of(page[-1])))
    if has_previous:
        links.append(('prev', 'before', PageCursor.of(page[0])))
    return page, links


def _url(request: Request, query: Dict[str, Any]) -> str:
    """This route's path with `query` (what is None left out): a Link target."""
    return f'{request.url.path}?' + urlencode(
        {name: value for name, value in query.items() if value is not None})


def _time(moment: Any) -> Optional[str]:
    return iso_utc(moment) if moment is not None else None


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
