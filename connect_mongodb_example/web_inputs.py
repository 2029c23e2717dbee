"""What a caller sends the web application, checked before any of it reaches a backend.

Every text a caller chooses (query parameters, the path, page cursors, the call context's
headers) is bounded and may hold no character a backend cannot take: a bad one is answered
400 naming the parameter, never passed on to fail as a 500 somewhere below.
"""
import base64
import binascii
import inspect
import json
import re
from datetime import datetime, timezone
from typing import Any, Dict, Optional

from connect.eaas.core.inject.common import get_call_context
from connect.eaas.core.inject.models import Context
from fastapi import Depends, HTTPException, Request
from pydantic import ValidationError

from connect_mongodb_example.event_record import STORED_FIELDS
from connect_mongodb_example.storage.base import PageCursor

INSTALLATION_HEADER = 'X-Connect-Installation-Id'
CONFIG_HEADER = 'X-Connect-Config'
#: Longest text of each stored field, as declared: no longer value can match one.
LENGTHS = {name: stored.length for name, stored in STORED_FIELDS if stored.length}
#: Control characters (C0 with NUL, which PostgreSQL refuses, DEL and C1), lone surrogates
#: (no encoder takes them: `%ED%A0%80` in a URL, or `\ud800` in a cursor's JSON) and U+FFFD,
#: which the server puts where a URL had bytes that are not UTF-8.
REFUSED_CHARACTERS = re.compile('[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffd]')
#: A cursor is base64url (no padding) of a short JSON array: [received_at, key].
CURSOR_ALPHABET = re.compile('[A-Za-z0-9_-]*')
#: Room for the longest key, every character escaped in JSON (6 characters), and the time.
MAX_CURSOR_LENGTH = (LENGTHS['key'] * 6 + 64) * 4 // 3 + 4
#: Times a cursor may name: what backends store (PostgreSQL, BSON and SQLite all take these).
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 1, 1, tzinfo=timezone.utc)

#: get_call_context's parameters (x_connect_installation_id, ...) -> the header each reads.
_CONTEXT_HEADERS = {name: name.replace('_', '-')
                    for name in inspect.signature(get_call_context).parameters}


def refused(parameter: str, problem: str) -> HTTPException:
    return HTTPException(400, f'{parameter}: {problem}')


def checked_text(parameter: str, value: Optional[str], max_length: int) -> Optional[str]:
    """`value` without surrounding spaces, None when empty; 400 if it is longer than
    `max_length` or holds a character no backend takes."""
    if value is None:
        return None
    if len(value) > max_length:
        raise refused(parameter, f'at most {max_length} characters, got {len(value)}')
    bad = REFUSED_CHARACTERS.search(value)
    if bad:
        raise refused(parameter, f'character U+{ord(bad.group()):04X} is not allowed')
    return value.strip() or None


def encode_cursor(cursor: PageCursor) -> str:
    """The opaque, URL-safe form of a page cursor, given in Link headers."""
    moment = cursor.received_at.astimezone(timezone.utc).isoformat()
    text = json.dumps([moment, cursor.key], ensure_ascii=False, separators=(',', ':'))
    return base64.urlsafe_b64encode(text.encode('utf-8')).decode('ascii').rstrip('=')


def decode_cursor(parameter: str, token: Optional[str]) -> Optional[PageCursor]:
    """The cursor `encode_cursor` gave, None when absent; 400 naming `parameter` for anything
    else (a cursor is only ever one this API made)."""
    if not token:
        return None
    problem = refused(parameter, 'not a page cursor of this API: give back one that a Link '
                                 'header gave')
    if len(token) > MAX_CURSOR_LENGTH or not CURSOR_ALPHABET.fullmatch(token):
        raise problem
    try:
        moment, key = json.loads(
            base64.urlsafe_b64decode(token + '=' * (-len(token) % 4)).decode('utf-8'))
        received_at = datetime.fromisoformat(moment)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, RecursionError):
        raise problem from None
    if (not isinstance(key, str) or received_at.tzinfo is None
            or not EARLIEST <= received_at < LATEST):
        raise problem
    if not key or len(key) > LENGTHS['key'] or REFUSED_CHARACTERS.search(key):
        raise problem
    return PageCursor(received_at.astimezone(timezone.utc), key)


def call_context(request: Request) -> Context:
    """eaas-core's call context (`get_call_context`), whose headers Connect's gateway sets;
    one it would never send (a value eaas-core's model refuses) is a 400, not a 500."""
    try:
        return get_call_context(**{name: request.headers.get(header)
                                   for name, header in _CONTEXT_HEADERS.items()})
    except ValidationError as error:
        names = sorted({f'X-Connect-{str(location).replace("_", "-").title()}'
                        for problem in error.errors() for location in problem['loc']})
        raise HTTPException(400, f'malformed call context: {", ".join(names)}') from None


def caller_installation(request: Request, context: Context = Depends(call_context)) -> str:
    """The installation of the call context; a call without exactly one is refused (400)."""
    if len(request.headers.getlist(INSTALLATION_HEADER)) > 1:
        raise HTTPException(400, f'the call context names several installations '
                                 f'({INSTALLATION_HEADER} given more than once)')
    installation_id = checked_text(INSTALLATION_HEADER, context.installation_id,
                                   LENGTHS['installation_id'])
    if not installation_id:
        raise HTTPException(400, f'no installation in the call context ({INSTALLATION_HEADER}): '
                                 'events are only shown to an installation of the extension')
    return installation_id


def caller_config(request: Request) -> Dict[str, Any]:
    """The variables the runner passes in X-Connect-Config (what eaas-core's `get_config`
    reads), as one JSON object; anything else is a 400 that does not repeat it (it holds
    secrets)."""
    given = request.headers.getlist(CONFIG_HEADER)
    if len(given) > 1:
        raise HTTPException(400, f'{CONFIG_HEADER} given more than once')
    try:
        config = json.loads(given[0]) if given else {}
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise HTTPException(400, f'{CONFIG_HEADER}: not a JSON object')
    return config
