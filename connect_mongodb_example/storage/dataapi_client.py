"""Talking to a Data-API-compatible server: one pooled httpx client per store, the key sent
as configured, retries of what may pass, and the server's refusals turned into our errors
(what each answer means is in `dataapi_errors`).

Bodies are Extended JSON (relaxed: plain numbers, dates as `{"$date": "...Z"}`) sent as
`application/json`: EJSON is valid JSON, FerretDB accepts no other content type and parses
the body as EJSON, and Atlas did the same. `Accept: application/ejson` asks for dates back
as `$date`; plain-JSON replies (ISO strings) are read as well.
"""
import logging
from asyncio import sleep
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any, Dict, Optional

import httpx
from bson import json_util
from bson.json_util import JSONOptions

from connect_mongodb_example.errors import StorageRejected, StorageUnavailable
from connect_mongodb_example.redaction import Redactor
from connect_mongodb_example.storage.dataapi_errors import read_answer, refusal
from connect_mongodb_example.storage.http_retry import RETRYABLE_ERRORS, backoff, retry_after
from connect_mongodb_example.storage.idle import STORAGE_IDLE_SECONDS

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 16
READ_OPTIONS = JSONOptions(tz_aware=True, tzinfo=timezone.utc)


@dataclass(frozen=True)
class DataApiSettings:
    url: str
    key: str = field(repr=False)
    auth: str
    user: str
    data_source: str
    database: str
    collection: str
    timeout: float
    retries: int
    idle_seconds: float = float(STORAGE_IDLE_SECONDS.default)


class DataApiClient:
    """POSTs actions (`updateOne`, `find`...) to one collection; `describe` starts messages."""

    def __init__(self, settings: DataApiSettings, describe: str):
        self._settings = settings
        self._describe = describe
        self._client: Optional[httpx.AsyncClient] = None
        self._actions_url = f'{settings.url.rstrip("/")}/action/'
        # Servers do not echo keys, but a proxy's error page might: masked regardless.
        self._redact = Redactor(settings.key)

    async def post(self, action: str, body: Dict[str, Any]) -> Dict[str, Any]:
        """POST one action, retrying what may pass; the decoded reply, or a storage error."""
        s = self._settings
        url = self._actions_url + action
        # UTF-8 as is: escaping every non-ASCII character would make bodies up to 6x larger.
        content = json_util.dumps({
            'dataSource': s.data_source, 'database': s.database, 'collection': s.collection,
            **body,
        }, json_options=json_util.RELAXED_JSON_OPTIONS, ensure_ascii=False).encode()
        attempt = 0
        while True:
            delay = None
            try:
                response = await self._http().post(url, content=content)
            except RETRYABLE_ERRORS as error:
                problem = f'{type(error).__name__} {self._redact(str(error))}'.strip()
            except httpx.HTTPError as error:
                # E.g. LocalProtocolError: the request could not even be sent, and a retry
                # would fail alike. Its message may quote header values: masked.
                raise StorageRejected(
                    f'{self._describe}: {action} could not be sent: '
                    f'{type(error).__name__} {self._redact(str(error))}'.strip(),
                ) from None
            else:
                if response.status_code < 300:
                    return self._decode(response)
                answer = read_answer(response, self._redact)
                refused = refusal(answer, action=action, where=self._describe, auth=s.auth,
                                  database=s.database)
                if refused is not None:
                    raise refused
                problem = f'HTTP {answer.status}{answer.detail}'
                delay = retry_after(response)
            if attempt >= s.retries:
                raise StorageUnavailable(
                    f'{self._describe}: {action} failed after {attempt + 1} attempt(s): '
                    f'{problem}',
                )
            attempt += 1
            wait = delay if delay is not None else backoff(attempt)
            logger.warning('%s: %s failed (%s); retry %d in %.2fs',
                           self._describe, action, problem, attempt, wait)
            await sleep(wait)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        """The one pooled client, created on first use."""
        if self._client is None:
            s = self._settings
            headers = {
                'Content-Type': 'application/json',
                'Accept': 'application/ejson, application/json;q=0.9',
            }
            auth = None
            if s.auth == 'api-key':
                headers['apiKey'] = s.key
            elif s.auth == 'bearer':
                headers['Authorization'] = f'Bearer {s.key}'
            else:
                auth = httpx.BasicAuth(s.user, s.key)
            self._client = httpx.AsyncClient(
                headers=headers,
                auth=auth,
                timeout=httpx.Timeout(s.timeout),
                limits=httpx.Limits(
                    max_connections=MAX_CONNECTIONS,
                    max_keepalive_connections=MAX_CONNECTIONS,
                    # httpx closes a connection that rested this long when the client is
                    # next used; meanwhile the server's own keep-alive timeout may close it.
                    keepalive_expiry=s.idle_seconds or None,
                ),
                # A redirect could carry the apiKey header to another host: never follow.
                follow_redirects=False,
            )
        return self._client

    def _decode(self, response: httpx.Response) -> Dict[str, Any]:
        try:
            reply = json_util.loads(response.text, json_options=READ_OPTIONS)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            kind = response.headers.get('content-type', 'no content type')
            raise StorageRejected(
                f'{self._describe}: HTTP {response.status_code} reply is not a JSON object '
                f'({kind}); is DATA_API_URL the base URL of a Data API?',
            )
        return reply
