"""The REST side of the emulation: the Connect API calls the runner makes for a task.

For an event the runner counts the collection of the event's definition with its RQL
filter (`limit=0`, answer in Content-Range) and reads the object: `requests` and
`requests/{id}` for a purchase request, `devops/installations` and
`devops/installations/{id}` for an installation status change; for a task of an
installation it also reads `devops/services/{service}/installations/{id}`. For a scheduled
task it reads the schedule, `devops/services/{service}/environments/{environment}/
schedules/{id}`. Anything else is answered 404 and logged, so a runner that starts calling
something new is noticed.
"""
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Tuple
from urllib.parse import unquote

from aiohttp import web

from localdev.connect_emulator.objects import ConnectObjects, FilterError
from localdev.connect_emulator.protocol import EVENT_DEFINITIONS

logger = logging.getLogger(__name__)

API_PREFIX = '/public/v1'
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
PAGING_PARAMS = ('limit', 'offset')
# RQL terms that shape the answer rather than filter it; the emulation ignores them.
NON_FILTER_TERMS = ('select(', 'ordering(', 'limit(')

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Finder = Callable[[str], List[Dict[str, Any]]]


@dataclass(frozen=True)
class ApiCall:
    method: str
    path: str
    query: str
    status: int


def connect_error(status: int, code: str, message: str) -> web.Response:
    """An error in the shape the Connect API (and its client library) uses."""
    return web.json_response({'error_code': code, 'errors': [message]}, status=status)


@web.middleware
async def require_api_key(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Like Connect, refuse calls without an `ApiKey ...` Authorization header."""
    if not request.headers.get('Authorization', '').startswith('ApiKey '):
        logger.warning('%s %s refused: no "ApiKey ..." Authorization header',
                       request.method, request.path)
        return connect_error(401, 'AUTH_001', 'API key is not provided or is invalid.')
    return await handler(request)


def split_query(raw_query: str) -> Tuple[str, Dict[str, str]]:
    """Split a Connect query string into its RQL filter and its paging parameters.

    `and(eq(id,PR-1),in(status,(pending)))&limit=0` -> ('and(...)', {'limit': '0'}).
    """
    terms: List[str] = []
    params: Dict[str, str] = {}
    for part in raw_query.split('&'):
        part = unquote(part)
        if not part:
            continue
        name, equals, value = part.partition('=')
        if equals and name in PAGING_PARAMS:
            params[name] = value
        elif not part.startswith(NON_FILTER_TERMS):
            terms.append(part)
    if len(terms) > 1:
        return f'and({",".join(terms)})', params
    return (terms[0] if terms else ''), params


def _paging(params: Dict[str, str]) -> Tuple[int, int]:
    try:
        limit = int(params.get('limit', DEFAULT_LIMIT))
        offset = int(params.get('offset', 0))
    except ValueError:
        raise ValueError('limit and offset must be whole numbers') from None
    if not (0 <= limit <= MAX_LIMIT and offset >= 0):
        raise ValueError(f'limit must be between 0 and {MAX_LIMIT}, offset 0 or more')
    return limit, offset


class RestApi:
    """The emulated Connect API, over the objects the delivered events put there."""

    def __init__(self, objects: ConnectObjects, *, service_id: str, environment_id: str):
        self.objects = objects
        self.service_id = service_id
        self.environment_id = environment_id
        #: Every call answered, in order (for tests and for debugging a runner).
        self.calls: List[ApiCall] = []

    @property
    def unknown_calls(self) -> List[ApiCall]:
        return [call for call in self.calls if call.status == 404]

    def routes(self) -> List[web.RouteDef]:
        """The routes, the catch-all last (add the websocket route before these)."""
        services = f'{API_PREFIX}/devops/services/{{service_id}}'
        environment = f'{services}/environments/{{environment_id}}'
        return [
            web.get(f'{API_PREFIX}/requests', self.list_requests),
            web.get(f'{API_PREFIX}/requests/{{request_id}}', self.get_request),
            web.get(f'{API_PREFIX}/devops/installations', self.list_installations),
            web.get(f'{API_PREFIX}/devops/installations/{{installation_id}}',
                    self.get_account_installation),
            web.get(f'{services}/installations/{{installation_id}}', self.get_installation),
            web.get(environment, self.get_environment),
            web.get(f'{environment}/schedules/{{schedule_id}}', self.get_schedule),
            web.get(f'{API_PREFIX}/devops/event-definitions', self.list_event_definitions),
            web.route('*', '/{tail:.*}', self.not_emulated),
        ]

    def _answer(self, request: web.Request, response: web.Response) -> web.Response:
        call = ApiCall(request.method, request.path, request.query_string, response.status)
        self.calls.append(call)
        level = logging.WARNING if response.status == 404 else logging.DEBUG
        logger.log(level, '%s %s?%s -> %d', call.method, call.path, call.query, call.status)
        return response

    async def list_requests(self, request: web.Request) -> web.Response:
        return await self._list(request, self.objects.find_requests)

    async def list_installations(self, request: web.Request) -> web.Response:
        return await self._list(request, self.objects.find_installations)

    async def _list(self, request: web.Request, find: Finder) -> web.Response:
        rql, params = split_query(request.query_string)
        try:
            limit, offset = _paging(params)
            found = find(rql)
        except (FilterError, ValueError) as error:
            return self._answer(request, connect_error(400, 'REQ_FILTER', str(error)))
        page = found[offset:offset + limit]
        # What Connect answers: `items first-last/total`, `items 0-0/N` for a count (limit=0).
        last = offset + max(len(page), 1) - 1
        headers = {'Content-Range': f'items {offset}-{last}/{len(found)}'}
        return self._answer(request, web.json_response(page, headers=headers))

    async def get_request(self, request: web.Request) -> web.Response:
        request_id = request.match_info['request_id']
        found = self.objects.request(request_id)
        if found is None:
            return self._answer(request, connect_error(
                404, 'REQ_NOT_FOUND', f'Request {request_id} not found.',
            ))
        return self._answer(request, web.json_response(found))

    async def get_account_installation(self, request: web.Request) -> web.Response:
        """An installation as its account (or the extension owner) reads it."""
        installation_id = request.match_info['installation_id']
        found = self.objects.installation(installation_id)
        if found is None:
            return self._answer(request, connect_error(
                404, 'DEVOPS_NOT_FOUND', f'Installation {installation_id} not found.',
            ))
        return self._answer(request, web.json_response(found))

    async def get_installation(self, request: web.Request) -> web.Response:
        installation_id = request.match_info['installation_id']
        found = self.objects.installation(installation_id)
        if request.match_info['service_id'] != self.service_id or found is None:
            return self._answer(request, connect_error(
                404, 'DEVOPS_NOT_FOUND',
                f'Installation {installation_id} of {request.match_info["service_id"]} '
                f'not found (the emulated extension is {self.service_id}).',
            ))
        return self._answer(request, web.json_response(found))

    async def get_environment(self, request: web.Request) -> web.Response:
        """Read by the runner when a worker process had to be restarted."""
        environment_id = request.match_info['environment_id']
        if environment_id != self.environment_id:
            return self._answer(request, connect_error(
                404, 'DEVOPS_NOT_FOUND', f'Environment {environment_id} not found.',
            ))
        environment: Dict[str, Any] = {
            'id': environment_id, 'type': 'development', 'runtime': 'local',
        }
        return self._answer(request, web.json_response(environment))

    async def get_schedule(self, request: web.Request) -> web.Response:
        """Read by the runner for a scheduled task: its `method` is what it runs."""
        schedule_id = request.match_info['schedule_id']
        found = self.objects.schedule(schedule_id)
        if (request.match_info['service_id'] != self.service_id
                or request.match_info['environment_id'] != self.environment_id
                or found is None):
            return self._answer(request, connect_error(
                404, 'DEVOPS_NOT_FOUND',
                f'Schedule {schedule_id} of {request.match_info["service_id"]}, environment '
                f'{request.match_info["environment_id"]} not found (the emulated extension is '
                f'{self.service_id}, environment {self.environment_id}).',
            ))
        return self._answer(request, web.json_response(found))

    async def list_event_definitions(self, request: web.Request) -> web.Response:
        """Read by the runner's start-up validation (skipped offline, served anyway)."""
        body = [{
            'type': definition.event_type,
            'api_collection_endpoint': definition.api_collection_endpoint,
            'api_resource_endpoint': definition.api_resource_endpoint,
            'api_collection_filter': definition.api_collection_filter,
            'object_statuses': list(statuses),
        } for definition, statuses in EVENT_DEFINITIONS]
        headers = {'Content-Range': f'items 0-{len(body) - 1}/{len(body)}'}
        return self._answer(request, web.json_response(body, headers=headers))

    async def not_emulated(self, request: web.Request) -> web.Response:
        return self._answer(request, connect_error(
            404, 'EMULATOR_404',
            f'{request.method} {request.path} is not emulated by localdev.connect_emulator; '
            f'add a route in localdev/connect_emulator/rest.py if the runner needs it.',
        ))
