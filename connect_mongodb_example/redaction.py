"""Secrets kept out of logs, errors and task results: the one place that masks them.

A URL's password is meant to be percent-encoded, but people paste generated ones as they
are. An unencoded `@` alone is harmless (urllib, and so peewee, split the user part off at
the last `@` before the host), but an unencoded `/`, `?` or `#` ends the host part early:
every parser (urllib, libpq, pymongo) then takes the rest of the password for the host,
the path or the query, and a mask that trusted them would show it. So the user part is
taken to run from `scheme://` to the last `@` of the URL, and what follows such an `@` is
shown only when it cannot be the tail of a query.
"""
import re
from typing import NamedTuple, Optional, Tuple
from urllib.parse import unquote_plus

MASK = '***'
# Where a URL's authority (user part, host and port) ends (RFC 3986, 3.2).
_AUTHORITY_END = re.compile(r'[/?#]')


class _Split(NamedTuple):
    prefix: str  # 'scheme://', or '' when there is none
    user: Optional[str]  # the user name, safe to show; None when it cannot be told apart
    secret: str  # what must be masked: the password, or the whole user part ('' if none)
    rest: Optional[str]  # host, path and query as written; None when they cannot be shown


def _split(url: str) -> _Split:
    """The URL cut at the last `@` (string operations only: it may be malformed)."""
    scheme, separator, rest = url.partition('://')
    prefix = scheme + separator if separator else ''
    if not separator:
        rest = url
    at = rest.rfind('@')
    if at < 0 or rest.startswith('/'):  # no user part (sqlite:////path/with@sign.db)
        return _Split(prefix, None, '', rest)
    userinfo, after = rest[:at], rest[at + 1:]
    user, colon, password = userinfo.partition(':')
    if _AUTHORITY_END.search(user):
        user, password = None, userinfo  # even the user name is cut: mask it all
    elif not colon:
        user, password = userinfo, ''  # a user name without a password
    # Past a ? or #, that last @ may sit in a query value: what follows it cannot be shown.
    shown = None if re.search('[?#]', userinfo) else after
    return _Split(prefix, user, password, shown)


def redact_url(url: str) -> str:
    """The URL with its password (everything up to the last `@` when the host part cannot
    be told apart) and its query values replaced, so that it can be logged (libpq also takes
    ?password= and ?sslpassword=). String operations only: it never raises."""
    parts = _split(url)
    if parts.rest is None:
        return parts.prefix + MASK
    if parts.user is None:
        userinfo = f'{MASK}@' if parts.secret else ''
    else:
        userinfo = f'{parts.user}:{MASK}@' if parts.secret else f'{parts.user}@'
    before_fragment, hash_, _ = parts.rest.partition('#')
    location, question, query = before_fragment.partition('?')
    if question:
        pairs = (pair.partition('=') for pair in query.split('&') if pair)
        # A pair without `=` is a value as much as a name: masked whole.
        location += '?' + '&'.join(f'{name}={MASK}' if equals else MASK
                                   for name, equals, _ in pairs)
    if hash_:
        location += f'#{MASK}'
    return parts.prefix + userinfo + location


def url_password(url: str) -> str:
    """What `redact_url` masks in the user part, as written (still URL-quoted), or '': the
    password, or the whole user part when its end cannot be told apart."""
    return _split(url).secret


def host_part_is_cut(url: str) -> bool:
    """True when an `@` follows the end of the URL's authority: an unencoded `/`, `?` or `#`
    in the user name or password ended the host part early, and the URL would be read with
    part of the password as its host or path (or an `@` in the path or query is unencoded)."""
    rest = url.partition('://')[2] or url
    end = _AUTHORITY_END.search(rest)
    return end is not None and '@' in rest[end.start():]


class Redactor:
    """Masks secrets in text, in every form a message may quote them: as given, URL-decoded,
    and escaped as in a str or bytes repr."""

    def __init__(self, *secrets: str):
        forms = set()
        for secret in filter(None, secrets):
            for form in (secret, unquote_plus(secret)):
                forms.update((form, repr(form)[1:-1], repr(form.encode())[2:-1]))
        # Longest first, so that a secret containing another is masked whole.
        self._forms: Tuple[str, ...] = tuple(sorted(filter(None, forms), key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, MASK)
        return text
