"""Secrets kept out of logs, errors and task results: the one place that masks them."""
from typing import Tuple
from urllib.parse import parse_qsl, unquote_plus, urlsplit

MASK = '***'


def redact_url(url: str) -> str:
    """The URL with its password and query values replaced, so that it can be logged
    (libpq also takes ?password= and ?sslpassword=)."""
    parts = urlsplit(url)
    if parts.password is None and not parts.query:
        return url  # as written: geturl() would turn sqlite:////abs into sqlite://abs
    if parts.password is not None:
        host = parts.netloc.rsplit('@', 1)[1]
        parts = parts._replace(netloc=f'{parts.username or ""}:{MASK}@{host}')
    if parts.query:
        names = (name for name, _ in parse_qsl(parts.query, keep_blank_values=True))
        parts = parts._replace(query='&'.join(f'{name}={MASK}' for name in names))
    return parts.geturl()


def url_password(url: str) -> str:
    """The password of a URL as written (still URL-quoted), or '' (no parsing that could
    fail: the URL may be the malformed value being reported)."""
    netloc = url.split('://', 1)[-1].split('/', 1)[0]
    userinfo = netloc.rsplit('@', 1)[0] if '@' in netloc else ''
    return userinfo.split(':', 1)[1] if ':' in userinfo else ''


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
