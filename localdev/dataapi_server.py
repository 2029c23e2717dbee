"""A local server speaking the (retired) Atlas Data API, backed by an in-memory mongomock.

For development, tests, the benchmark and the demo: it listens on loopback only and keeps
nothing on disk. Run it with

    python -m localdev.dataapi_server --port 8081 --api-key local-dev-key

or from code:

    async with DataApiServer(api_key='k') as server:
        ...  # DATA_API_URL=server.base_url, DATA_API_KEY='k'

Implements POST {base}/action/findOne, find, aggregate, insertOne and updateOne (upsert,
$setOnInsert, $inc, $set...) with Atlas-shaped replies and errors ({"error": ...,
"error_code": ...}), and the three ways of sending the key the `dataapi` backend knows:
api-key, bearer and basic.
Bodies are read as Extended JSON; replies are relaxed EJSON, or plain JSON (dates as ISO
strings, ids as strings) unless the client accepts application/ejson.
"""
import argparse
import asyncio
import contextlib
import hmac
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Dict, Optional, Set, Tuple

import mongomock
from aiohttp import BasicAuth, web
from bson import ObjectId, json_util
from bson.json_util import JSONOptions
from pymongo.errors import DuplicateKeyError, PyMongoError

AUTH_MODES = ('api-key', 'bearer', 'basic')
LOOPBACK = ('127.0.0.1', '::1', 'localhost')
# The path prefix of an Atlas App's Data API, so that base URLs look like the real ones.
BASE_PATH = '/app/local/endpoint/data/v1'
READ_OPTIONS = JSONOptions(tz_aware=True, tzinfo=timezone.utc)
# Room for a document at MongoDB's 16 MB limit plus the request around it (aiohttp's
# default, 1 MB, would refuse events MongoDB itself stores).
MAX_BODY_BYTES = 20 * 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Answered as {"error": message, "error_code": code} with an HTTP status."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code


class DataApiServer:
    """One server with its own in-memory data; start() returns the base URL."""

    def __init__(
        self,
        *,
        api_key: str = 'local-dev-key',
        auth: str = 'api-key',
        user: str = 'dataapi',
        host: str = '127.0.0.1',
        port: int = 0,
    ):
        if auth not in AUTH_MODES:
            raise ValueError(f'auth must be one of {", ".join(AUTH_MODES)}, got {auth!r}')
        if host not in LOOPBACK:
            raise ValueError(f'the local Data API listens on loopback only, not {host!r}')
        self.api_key = api_key
        self.auth = auth
        self.user = user
        self.host = host
        self.port = port
        self.mongo = mongomock.MongoClient(tz_aware=True)
        #: (address, port) of every client connection seen: one per TCP connection.
        self.connections: Set[Tuple[Any, ...]] = set()
        self.requests = 0
        self._faults: Dict[str, Any] = {'count': 0}
        self._runner: Optional[web.AppRunner] = None

    @property
    def base_url(self) -> str:
        host = f'[{self.host}]' if ':' in self.host else self.host
        return f'http://{host}:{self.port}{BASE_PATH}'

    def collection(self, database: str, collection: str) -> Any:
        """The (synchronous, mongomock) collection behind the API, to inspect or seed."""
        return self.mongo[database][collection]

    def fail_next(self, count: int, status: int = 503, retry_after: Optional[str] = None) -> None:
        """Answer the next `count` requests with `status` (and Retry-After, when given)."""
        self._faults = {'count': count, 'status': status, 'retry_after': retry_after}

    async def start(self) -> str:
        app = web.Application(
            middlewares=[self._track, self._inject_faults, self._errors],
            client_max_size=MAX_BODY_BYTES,
        )
        for path in (f'{BASE_PATH}/action/{{action}}', '/action/{action}'):
            app.router.add_post(path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        return self.base_url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> 'DataApiServer':
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    @web.middleware
    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        if request.transport is not None:
            self.connections.add(request.transport.get_extra_info('peername'))
        return await handler(request)

    @web.middleware
    async def _inject_faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._faults['count'] > 0:
            self._faults['count'] -= 1
            headers = {}
            if self._faults['retry_after'] is not None:
                headers['Retry-After'] = self._faults['retry_after']
            return _error_response(
                self._faults['status'], 'ServiceUnavailable', 'injected fault', headers,
            )
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return _error_response(error.status, error.code, str(error))

    async def _handle(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        body = await _read_body(request)
        collection = self.collection(_required(body, 'database'), _required(body, 'collection'))
        action = ACTIONS.get(request.match_info['action'])
        if action is None:
            raise ApiError(404, 'InvalidParameter',
                           f'unknown action {request.match_info["action"]!r}')
        try:
            result = action(collection, body)
        except DuplicateKeyError as error:
            raise ApiError(409, 'DuplicateKey', str(error)) from None
        except (PyMongoError, ValueError, TypeError) as error:
            raise ApiError(400, 'InvalidParameter', str(error)) from None
        if 'ejson' in request.headers.get('Accept', ''):
            text = json_util.dumps(result, json_options=json_util.RELAXED_JSON_OPTIONS,
                                   ensure_ascii=False)
            return web.Response(text=text, content_type='application/ejson')
        text = json_util.dumps(_plain(result), ensure_ascii=False)
        return web.Response(text=text, content_type='application/json')

    def _authenticate(self, request: web.Request) -> None:
        headers = request.headers
        if self.auth == 'api-key':
            # Atlas documented both spellings of the header.
            given = headers.get('apiKey') or headers.get('api-key') or ''
            ok = _same(given, self.api_key)
        elif self.auth == 'bearer':
            ok = _same(headers.get('Authorization', ''), f'Bearer {self.api_key}')
        else:
            try:
                basic = BasicAuth.decode(headers.get('Authorization', ''))
            except ValueError:
                basic = None
            ok = basic is not None and _same(basic.login, self.user) \
                and _same(basic.password, self.api_key)
        if not ok:
            raise ApiError(401, 'InvalidSession',
                           'invalid session: error finding user for endpoint')


def _find_one(collection: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    return {'document': collection.find_one(body.get('filter') or {}, body.get('projection'))}


def _find(collection: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    cursor = collection.find(body.get('filter') or {}, body.get('projection'))
    if body.get('sort'):
        cursor = cursor.sort(list(body['sort'].items()))
    cursor = cursor.skip(int(body.get('skip') or 0)).limit(int(body.get('limit') or 0))
    return {'documents': list(cursor)}


def _aggregate(collection: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    pipeline = body.get('pipeline')
    if not isinstance(pipeline, list):
        raise ApiError(400, 'InvalidParameter', 'pipeline must be an array')
    return {'documents': list(collection.aggregate(pipeline))}


def _insert_one(collection: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    document = body.get('document')
    if not isinstance(document, dict):
        raise ApiError(400, 'InvalidParameter', 'document must be an object')
    return {'insertedId': collection.insert_one(document).inserted_id}


def _update_one(collection: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    if not isinstance(body.get('update'), dict):
        raise ApiError(400, 'InvalidParameter', 'update must be an object')
    result = collection.update_one(
        body.get('filter') or {}, body['update'], upsert=bool(body.get('upsert')),
    )
    reply: Dict[str, Any] = {
        'matchedCount': result.matched_count, 'modifiedCount': result.modified_count,
    }
    if result.upserted_id is not None:
        reply['upsertedId'] = result.upserted_id
    return reply


ACTIONS: Dict[str, Callable[[Any, Dict[str, Any]], Dict[str, Any]]] = {
    'findOne': _find_one,
    'find': _find,
    'aggregate': _aggregate,
    'insertOne': _insert_one,
    'updateOne': _update_one,
}


async def _read_body(request: web.Request) -> Dict[str, Any]:
    if request.content_type not in ('application/json', 'application/ejson'):
        raise ApiError(400, 'InvalidParameter',
                       'Content-Type must be application/json or application/ejson')
    try:
        body = json_util.loads(await request.text(), json_options=READ_OPTIONS)
    except ValueError as error:
        raise ApiError(400, 'InvalidParameter', f'invalid JSON body: {error}') from None
    if not isinstance(body, dict):
        raise ApiError(400, 'InvalidParameter', 'the body must be a JSON object')
    return body


def _required(body: Dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(400, 'MissingParameter', f'{name} is required')
    return value


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _plain(value: Any) -> Any:
    """Plain JSON, as Atlas answered `Accept: application/json`: ISO dates, string ids."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        moment = value.astimezone(timezone.utc).isoformat(timespec='milliseconds')
        return moment.replace('+00:00', 'Z')
    if isinstance(value, ObjectId):
        return str(value)
    return value


def _error_response(
    status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None,
) -> web.Response:
    return web.json_response({'error': message, 'error_code': code}, status=status,
                             headers=headers)


async def _serve(server: DataApiServer) -> None:
    await server.start()
    user = f' DATA_API_USER={server.user}' if server.auth == 'basic' else ''
    print(f'Local Data API on {server.base_url}; set\n'
          f'  STORAGE_BACKENDS=dataapi DATA_API_URL={server.base_url} '
          f'DATA_API_AUTH={server.auth}{user}\n'
          f'and DATA_API_KEY to the --api-key given. Ctrl-C stops it (data is in memory only).',
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--port', type=int, default=8081)
    parser.add_argument('--host', default='127.0.0.1', choices=LOOPBACK)
    parser.add_argument('--api-key', default='local-dev-key')
    parser.add_argument('--auth', default='api-key', choices=AUTH_MODES)
    parser.add_argument('--user', default='dataapi', help='user name for --auth basic')
    options = parser.parse_args(argv)
    server = DataApiServer(api_key=options.api_key, auth=options.auth, user=options.user,
                           host=options.host, port=options.port)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(server))


if __name__ == '__main__':
    main()
