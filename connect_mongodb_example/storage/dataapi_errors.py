"""What a Data-API-compatible server's refusal means: try again, or which error at once.

Two dialects answer. Atlas's (switched off in September 2025) said it with the HTTP status:
401 and 403 for the key, 413 for a body too large, 429 and 5xx for "try again later".
FerretDB 2.x (`internal/dataapi/server`) answers every command that failed with HTTP 500
and `{"error": errmsg, "error_code": codeName}`, the MongoDB codeName of the command's error
(server.go, `writeJSONError`); a request without HTTP Basic credentials with 400
`InvalidParameter`, and one with an empty user or password with 400 `MissingParameter`
(errors.go); a wrong password with 500 `AuthenticationFailed` (its SCRAM handshake). So a
500 is not "try again": its codeName decides, and the status only when there is none.
"""
from typing import NamedTuple, Optional

import httpx

from connect_mongodb_example.errors import (
    ConfigurationError,
    DuplicateKey,
    ExtensionError,
    InvalidRequest,
    StorageRejected,
)
from connect_mongodb_example.redaction import Redactor
from connect_mongodb_example.storage.http_retry import retryable_status

# codeNames after which another attempt may pass. MongoDB's retryable writes specification
# (pymongo lists its codes in helpers_shared._RETRYABLE_ERROR_CODES): a primary stepping
# down or shutting down, and the network between the server and its data.
RETRYABLE_WRITE_CODES = frozenset({
    'HostUnreachable', 'HostNotFound', 'NetworkTimeout', 'SocketException',
    'ShutdownInProgress', 'InterruptedAtShutdown', 'InterruptedDueToReplStateChange',
    'PrimarySteppedDown', 'NotWritablePrimary', 'LegacyNotPrimary', 'NotPrimaryNoSecondaryOk',
    'NotPrimaryOrSecondary', 'ExceededTimeLimit', 'ReadConcernMajorityNotAvailableYet',
})
TRANSIENT_CODES = RETRYABLE_WRITE_CODES | {
    # Time limits, and a write that lost a race it may win next time. FerretDB reports a
    # PostgreSQL statement cancelled by its timeout as MaxTimeMSExpired.
    'MaxTimeMSExpired', 'WriteConflict', 'LockTimeout',
    # FerretDB reports every error that is not PostgreSQL's own answer as InternalError,
    # among them its connection to PostgreSQL refused or lost (mongoerrors.Make): most
    # often an outage of the database behind it.
    'InternalError',
}
# The server does not accept the credentials (MongoDB code 18; FerretDB's SCRAM handshake).
CREDENTIAL_CODES = frozenset({'AuthenticationFailed', 'UserNotFound'})
# The credentials are accepted but lack a privilege: MongoDB's Unauthorized (13), and
# PostgreSQL's insufficient_privilege (42501) as FerretDB names it.
GRANT_CODES = frozenset({'Unauthorized', 'InsufficientPrivilege'})
# A document over the 16 MiB limit: it will never fit. MongoDB spells 10334
# BSONObjectTooLarge, FerretDB BsonObjectTooLarge; 17419 and 17420 after an update.
TOO_LARGE_CODES = frozenset({
    'BSONObjectTooLarge', 'BsonObjectTooLarge',
    'DocumentAfterUpdateLargerThanMaxSize', 'DocumentToUpsertLargerThanMaxSize',
})
DUPLICATE_KEY_CODES = frozenset({'DuplicateKey'})
# The 400 codes of a request that carried no credentials the server reads (with an error
# that says so: "no authentication methods were specified", "must specify some form of
# authentication"); Atlas used the same codes for other bad requests.
MISSING_CREDENTIALS_CODES = frozenset({'InvalidParameter', 'MissingParameter'})
# What each action needs of the user's grants.
READ_ACTIONS = frozenset({'find', 'findOne', 'aggregate'})
LONGEST_DETAIL = 300


class Answer(NamedTuple):
    """A refusal as the server gave it, redacted: status, `error_code` and `error` (or the
    first line of a body that is not a JSON error), and where a redirect pointed."""

    status: int
    code: str
    message: str
    location: str

    @property
    def detail(self) -> str:
        """' code: message', as messages quote it ('' when the server said nothing)."""
        text = ': '.join(part for part in (self.code, self.message) if part)
        return f' {text}' if text else ''


def read_answer(response: httpx.Response, redact: Redactor) -> Answer:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get('error') or body.get('error_code')):
        code, message = str(body.get('error_code') or ''), str(body.get('error') or '')
    else:
        code, message = '', (response.text.strip().splitlines() or [''])[0]
    return Answer(
        status=response.status_code,
        code=redact(code)[:LONGEST_DETAIL],
        message=redact(message)[:LONGEST_DETAIL],
        location=redact(response.headers.get('location', '')),
    )


def refusal(
    answer: Answer, *, action: str, where: str, auth: str, database: str,
) -> Optional[ExtensionError]:
    """The error `answer` (not a 2xx) means, or None when another attempt may pass."""
    refused = f'{where}: {action} refused, HTTP {answer.status}{answer.detail}'
    if answer.code in DUPLICATE_KEY_CODES or 'E11000' in answer.message \
            or 'duplicate key' in answer.message.lower():
        return DuplicateKey(f'{where}: {action}:{answer.detail}')
    if answer.code in TRANSIENT_CODES:
        return None
    access = access_problem(answer, refused, action=action, auth=auth, database=database)
    if access is not None:
        return access
    if answer.code in TOO_LARGE_CODES or answer.status == 413:
        # Like MongoDB's 16 MB limit: this event will never fit, retrying cannot help.
        return InvalidRequest(
            f'{where}: {action} refused, HTTP {answer.status}, the request is too large for '
            f'this server:{answer.detail}')
    if answer.status == 500 and answer.code:
        # FerretDB's answer to a command that failed for a reason no retry changes.
        return StorageRejected(refused)
    if retryable_status(answer.status):
        return None
    hint = ''
    if 300 <= answer.status < 400:
        hint = f'; redirected to {answer.location!r}: set DATA_API_URL to the final URL'
    elif answer.status == 404:
        hint = '; check DATA_API_URL (the base URL, without /action/...)'
    return StorageRejected(refused + hint)


def access_problem(
    answer: Answer, refused: str, *, action: str, auth: str, database: str,
) -> Optional[ConfigurationError]:
    """The variable to fix when the server refused the credentials or their grants (not an
    outage: retrying cannot help until they change), or None."""
    basic = auth == 'basic'
    if answer.code in CREDENTIAL_CODES:
        check = ('DATA_API_USER and DATA_API_KEY (the password of that user)' if basic
                 else 'DATA_API_KEY and DATA_API_AUTH')
        return ConfigurationError(
            'DATA_API_KEY', f'{refused}; the server does not accept these credentials: '
                            f'check {check}')
    if answer.code in GRANT_CODES:
        role = 'read' if action in READ_ACTIONS else 'readWrite'
        who = 'the user in DATA_API_USER' if basic else 'the key in DATA_API_KEY'
        return ConfigurationError(
            'DATA_API_USER' if basic else 'DATA_API_KEY',
            f'{refused}; {who} lacks a privilege: {action} needs the {role} role on database '
            f'{database!r}, and the extension needs readWrite (on FerretDB, whose users are '
            'PostgreSQL roles: createUser with the role readWriteAnyDatabase)',
        )
    if answer.status == 400 and answer.code in MISSING_CREDENTIALS_CODES \
            and 'authentication' in answer.message.lower():
        if not basic:
            return ConfigurationError(
                'DATA_API_AUTH', f'{refused}; this server accepts HTTP Basic only (FerretDB): '
                                 'set DATA_API_AUTH=basic and DATA_API_USER, with DATA_API_KEY '
                                 f'the password of that user (DATA_API_AUTH is {auth})')
        return ConfigurationError(
            'DATA_API_USER', f'{refused}; the server read no user name or password: check '
                             'DATA_API_USER and DATA_API_KEY')
    if answer.status in (401, 403):
        return ConfigurationError(
            'DATA_API_KEY', f'{refused}; check DATA_API_KEY, DATA_API_AUTH and DATA_API_USER')
    return None
