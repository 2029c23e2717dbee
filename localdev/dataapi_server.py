"""A local server speaking the (retired) Atlas Data API, backed by an in-memory mongomock,
or by a MongoDB-compatible server (`--mongodb-uri`).

For development, tests, the benchmark and the demo: it listens on loopback only and, on
mongomock, keeps nothing on disk. Run it with

    python -m localdev.dataapi_server --port 8081 --api-key local-dev-key

or, answering as FerretDB 2.x does (HTTP Basic only, `/action/...` at the root):

    python -m localdev.dataapi_server --port 8081 --flavour ferretdb --user ops --api-key pw

or from code:

    async with DataApiServer(api_key='k') as server:
        ...  # DATA_API_URL=server.base_url, DATA_API_KEY='k'

Implements POST {base}/action/findOne, find, aggregate, insertOne, updateOne and updateMany
(upsert, $setOnInsert, $inc, $set, $unset...), deleteOne and deleteMany, with Atlas-shaped
replies and errors ({"error": ..., "error_code": ...}), and the three ways of sending the
key the `dataapi` backend knows: api-key, bearer and basic. The `ferretdb` flavour refuses
as FerretDB does instead (`ferretdb_answer`). On mongomock each action runs alone, in the
event loop; on a real server actions run in threads, concurrently, as they would on Atlas.
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
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError, PyMongoError

AUTH_MODES = ('api-key', 'bearer', 'basic')
FLAVOURS = ('atlas', 'ferretdb')
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


class ExactAnswer(ApiError):
    """Answered as given in every flavour (an authentication refusal)."""


# FerretDB 2.x's refusals of credentials (internal/dataapi/server: errors.go, and the SCRAM
# handshake of AuthMiddleware in server.go, whose failure writeJSONError answers with 500).
FERRETDB_NO_CREDENTIALS = (400, 'InvalidParameter', 'no authentication methods were specified')
FERRETDB_EMPTY_CREDENTIALS = (
    400, 'MissingParameter', 'must specify some form of authentication (either email+password, '
                             'api-key, or jwt) in the request header or body')
FERRETDB_WRONG_CREDENTIALS = (500, 'AuthenticationFailed', 'Authentication failed.')
# FerretDB's handlers never read the writeErrors of a reply that is ok: a write that failed
# with a duplicate key is answered as one that matched and modified nothing (updateOne), or
# with the _id it sent (insertOne).
FERRETDB_WRITE_ERROR_REPLIES: Dict[str, Callable[[Dict[str, Any]], Dict[str, Any]]] = {
    'updateOne': lambda body: {'matchedCount': 0, 'modifiedCount': 0},
    'insertOne': lambda body: {'insertedId': (body.get('document') or {}).get('_id')},
}


class DataApiServer:
    """One server with its own in-memory data; start() returns the base URL."""

    def __init__(
        self,
        *,
        api_key: str = 'local-dev-key',
        auth: Optional[str] = None,
        user: str = 'dataapi',
        host: str = '127.0.0.1',
        port: int = 0,
        flavour: str = 'atlas',
        mongodb_uri: Optional[str] = None,
    ):
        if flavour not in FLAVOURS:
            raise ValueError(f'flavour must be one of {", ".join(FLAVOURS)}, got {flavour!r}')
        # FerretDB authenticates with HTTP Basic only; Atlas's default was the apiKey header.
        auth = auth or ('basic' if flavour == 'ferretdb' else 'api-key')
        if auth not in AUTH_MODES or flavour == 'ferretdb' and auth != 'basic':
            modes = 'basic' if flavour == 'ferretdb' else ', '.join(AUTH_MODES)
            raise ValueError(f'auth must be {modes} for the {flavour} flavour, got {auth!r}')
        if host not in LOOPBACK:
            raise ValueError(f'the local Data API listens on loopback only, not {host!r}')
        self.api_key = api_key
        self.auth = auth
        self.flavour = flavour
        self.user = user
        self.host = host
        self.port = port
        #: The data: mongomock, or the server at `mongodb_uri`.
        self.mongo = (MongoClient(mongodb_uri, tz_aware=True) if mongodb_uri
                      else mongomock.MongoClient(tz_aware=True))
        #: Whether the data outlives the server (a real server keeps it).
        self.keeps_data = mongodb_uri is not None
        #: (address, port) of every client connection seen: one per TCP connection.
        self.connections: Set[Tuple[Any, ...]] = set()
        self.requests = 0
        self._faults: Dict[str, Any] = {'count': 0}
        self._runner: Optional[web.AppRunner] = None

    @property
    def base_url(self) -> str:
        host = f'[{self.host}]' if ':' in self.host else self.host
        # FerretDB serves /action/... at the root.
        path = '' if self.flavour == 'ferretdb' else BASE_PATH
        return f'http://{host}:{self.port}{path}'

    def collection(self, database: str, collection: str) -> Any:
        """The (synchronous, mongomock) collection behind the API, to inspect or seed."""
        return self.mongo[database][collection]

    def fail_next(
        self, count: int, status: int = 503, retry_after: Optional[str] = None,
        code: str = 'ServiceUnavailable', message: str = 'injected fault',
    ) -> None:
        """Answer the next `count` requests with `status` and {"error": message, "error_code":
        code} (and Retry-After, when given): FerretDB answers a failed command with 500 and
        its codeName, e.g. fail_next(1, 500, code='NotWritablePrimary')."""
        self._faults = {'count': count, 'status': status, 'retry_after': retry_after,
                        'code': code, 'message': message}

    async def start(self) -> str:
        app = web.Application(
            middlewares=[self._track, self._inject_faults, self._errors, self._authenticated],
            client_max_size=MAX_BODY_BYTES,
        )
        paths = ['/action/{action}']
        if self.flavour == 'atlas':
            paths.append(f'{BASE_PATH}/action/{{action}}')
        for path in paths:
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

    def close(self) -> None:
        """Close the connections to a real server (the server object is done with)."""
        self.mongo.close()

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
                self._faults['status'], self._faults['code'], self._faults['message'], headers,
            )
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            if self.flavour == 'ferretdb':
                return ferretdb_answer(error)
            return _error_response(error.status, error.code, str(error))
        except web.HTTPNotFound:
            if self.flavour == 'ferretdb':
                return ferretdb_answer(ApiError(404, '', 'not found'))
            raise

    @web.middleware
    async def _authenticated(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Before routing, as FerretDB's AuthMiddleware wraps its whole mux.
        if self.flavour == 'ferretdb':
            self._authenticate_as_ferretdb(request)
        else:
            self._authenticate(request)
        return await handler(request)

    async def _handle(self, request: web.Request) -> web.Response:
        if self.flavour == 'ferretdb' and request.content_type != 'application/json':
            raise ApiError(400, 'InvalidParameter', 'Content-Type must be set to application/json')
        body = await _read_body(request)
        collection = self.collection(_required(body, 'database'), _required(body, 'collection'))
        action = ACTIONS.get(request.match_info['action'])
        if action is None:
            raise ApiError(404, 'InvalidParameter',
                           f'unknown action {request.match_info["action"]!r}')
        try:
            if self.keeps_data:
                result = await asyncio.to_thread(action, collection, body)
            else:
                result = action(collection, body)
        except DuplicateKeyError as error:
            write_error_reply = FERRETDB_WRITE_ERROR_REPLIES.get(request.match_info['action'])
            if self.flavour != 'ferretdb' or write_error_reply is None:
                raise ApiError(409, 'DuplicateKey', str(error)) from None
            result = write_error_reply(body)
        except (PyMongoError, ValueError, TypeError, OverflowError) as error:
            if self.flavour == 'ferretdb':
                # A failed command: FerretDB answers 500 with the error's codeName.
                details = getattr(error, 'details', None) or {}
                raise ApiError(500, details.get('codeName') or 'BadValue', str(error)) from None
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

    def _authenticate_as_ferretdb(self, request: web.Request) -> None:
        """HTTP Basic only, as Go's Request.BasicAuth reads it; FerretDB then runs a SCRAM
        handshake with the user and password, whose failure it answers with 500."""
        try:
            basic = BasicAuth.decode(request.headers.get('Authorization', ''))
        except ValueError:
            raise ExactAnswer(*FERRETDB_NO_CREDENTIALS) from None
        if not basic.login or not basic.password:
            raise ExactAnswer(*FERRETDB_EMPTY_CREDENTIALS)
        if not (_same(basic.login, self.user) and _same(basic.password, self.api_key)):
            raise ExactAnswer(*FERRETDB_WRONG_CREDENTIALS)


def _find_one(collection: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    return {'document': collection.find_one(body.get('filter') or {}, body.get('projection'))}


def _find(collection: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    cursor = collection.find(body.get('filter') or {}, body.get('projection'))
    if body.get('sort'):
        cursor = cursor.sort(list(body['sort'].items()))
    cursor = cursor.skip(_whole(body, 'skip')).limit(_whole(body, 'limit'))
    return {'documents': list(cursor)}


def _whole(body: Dict[str, Any], name: str) -> int:
    """A skip or limit as MongoDB takes it: a 64-bit integer (mongomock takes any)."""
    value = body.get(name) or 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2 ** 63:
        raise ApiError(400, 'InvalidParameter', f'{name} must be a non-negative 64-bit '
                                                f'integer, got {value!r}')
    return value


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
    return _update_reply(collection.update_one(
        body.get('filter') or {}, _update(body), upsert=bool(body.get('upsert'))))


def _update_many(collection: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    return _update_reply(collection.update_many(
        body.get('filter') or {}, _update(body), upsert=bool(body.get('upsert'))))


def _delete_one(collection: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    return {'deletedCount': collection.delete_one(_delete_filter(body)).deleted_count}


def _delete_many(collection: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    return {'deletedCount': collection.delete_many(_delete_filter(body)).deleted_count}


def _update(body: Dict[str, Any]) -> Dict[str, Any]:
    if not isinstance(body.get('update'), dict):
        raise ApiError(400, 'InvalidParameter', 'update must be an object')
    return body['update']


def _delete_filter(body: Dict[str, Any]) -> Dict[str, Any]:
    # Atlas required a filter: a delete never empties a collection by omission.
    if not isinstance(body.get('filter'), dict):
        raise ApiError(400, 'InvalidParameter', 'filter must be an object')
    return body['filter']


def _update_reply(result: Any) -> Dict[str, Any]:
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
    'updateMany': _update_many,
    'deleteOne': _delete_one,
    'deleteMany': _delete_many,
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


def ferretdb_answer(error: ApiError) -> web.Response:
    """FerretDB's answer to what this server refused: authentication refusals and failed
    commands (500) as JSON errors, an unknown path as its mux's plain-text 404, and what it
    cannot decode or turn into a command as a plain-text 500 (http.Error)."""
    if isinstance(error, ExactAnswer) or error.status >= 500:
        return _error_response(error.status, error.code, str(error))
    if error.status == 404:
        return web.Response(status=404, text='404 page not found\n')
    return web.Response(status=500, text=f'{error}\n')


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
          f'and DATA_API_KEY to the --api-key given. Ctrl-C stops it'
          f'{"" if server.keeps_data else " (data is in memory only)"}.',
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
        server.close()


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--port', type=int, default=8081)
    parser.add_argument('--host', default='127.0.0.1', choices=LOOPBACK)
    parser.add_argument('--api-key', default='local-dev-key')
    parser.add_argument('--auth', choices=AUTH_MODES,
                        help='api-key (the default), bearer or basic; ferretdb: basic only')
    parser.add_argument('--user', default='dataapi', help='user name for --auth basic')
    parser.add_argument('--flavour', default='atlas', choices=FLAVOURS,
                        help="whose answers to give: Atlas's, or FerretDB 2.x's")
    parser.add_argument('--mongodb-uri', default=None,
                        help='keep the data in this MongoDB-compatible server instead of memory')
    options = parser.parse_args(argv)
    try:
        server = DataApiServer(api_key=options.api_key, auth=options.auth, user=options.user,
                               host=options.host, port=options.port, flavour=options.flavour,
                               mongodb_uri=options.mongodb_uri)
    except ValueError as error:
        parser.error(str(error))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(server))


if __name__ == '__main__':
    main()
