"""Whatever a caller sends, no route answers 500: every number is bounded, every text that
no backend can take (NUL, control characters, lone surrogates, bytes that are not UTF-8,
over-long values, forged cursors) is refused with a 4xx naming the parameter, on every
backend; and so are forged call-context headers."""
import base64
import json
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from connect_mongodb_example.storage.base import PageCursor
from connect_mongodb_example.web_inputs import MAX_CURSOR_LENGTH, encode_cursor
from tests.support.web import MINE, T0, Web, web_for, web_targets

ROUTES = ('/api/events', '/api/events/export', '/api/schema', '/api/installation',
          '/api/storage', '/api/requests/PR-0001/timeline')


def cursor_of(document: Any) -> str:
    """A cursor made by hand: what a forger would send."""
    text = json.dumps(document)
    return base64.urlsafe_b64encode(text.encode('utf-8', 'surrogatepass')).decode().rstrip('=')


#: (query or path, the parameter the answer must name).
HOSTILE: List[Tuple[str, str]] = [
    # Numbers: bounded, whatever their size.
    ('/api/events?offset=9223372036854775808', 'offset'),
    ('/api/events?offset=-9223372036854775809', 'offset'),
    ('/api/events?offset=' + '9' * 40, 'offset'),
    ('/api/events?offset=' + '9' * 5000, 'offset'),
    ('/api/events?limit=9223372036854775808', 'limit'),
    ('/api/events?limit=1e3', 'limit'),
    ('/api/events?limit=NaN', 'limit'),
    ('/api/events?limit=%00', 'limit'),
    ('/api/events/export?limit=0', 'limit'),
    ('/api/events/export?limit=1001', 'limit'),
    # Text no backend takes: NUL (PostgreSQL), controls, lone surrogates, non-UTF-8 bytes.
    *[(f'/api/events?{name}={value}', name)
      for name in ('status', 'request_id')
      for value in ('%00', 'PR-1%00', '%01', '%1F', '%7F', '%C2%85', '%ED%A0%80', '%FF',
                    'PR-%ED%B0%80-1')],
    ('/api/events?request_id=' + 'P' * 129, 'request_id'),
    # httpx sends no URL over 64 KiB.
    ('/api/events?request_id=' + 'P' * 60_000, 'request_id'),
    ('/api/events?status=' + 'p' * 5000, 'status'),
    *[(f'/api/requests/{value}/timeline', 'request_id')
      for value in ('%00', 'PR%00x', '%01', '%ED%A0%80', '%FF', 'P' * 129)],
    *[(f'/api/events/export?format={value}', 'format')
      for value in ('%00', 'xml', 'CSV', '%ED%A0%80', 'c' * 5000, '')],
    # Cursors: only ever one this API made.
    *[(f'/api/events?{name}={value}', name)
      for name in ('after', 'before')
      for value in ('nonsense!', '%00', 'e30', 'W10', '%ED%A0%80', 'A' * (MAX_CURSOR_LENGTH + 1),
                    cursor_of(['2026-11-20T10:00:00+00:00']),
                    cursor_of(['2026-11-20T10:00:00', 'k']),  # no time zone
                    cursor_of(['0001-01-01T00:00:00+00:00', 'k']),
                    cursor_of(['9999-12-31T23:59:59+00:00', 'k']),
                    cursor_of(['2026-11-20T10:00:00+00:00', 'k\x00']),
                    cursor_of(['2026-11-20T10:00:00+00:00', 'k\ud800']),
                    cursor_of(['2026-11-20T10:00:00+00:00', 'k' * 513]),
                    cursor_of(['2026-11-20T10:00:00+00:00', '']),
                    cursor_of(['2026-11-20T10:00:00+00:00', 5]),
                    cursor_of({'a': 1, 'b': 2}), cursor_of('[' * 2000))],
    ('/api/events/export?after=nonsense!', 'after'),
    ('/api/events?after={cursor}&before={cursor}', 'before'),
]


@pytest.fixture(params=web_targets())
def web(request) -> Iterator[Web]:
    yield from web_for(request.param, request)


def test_hostile_parameters_are_refused_naming_them_on_every_backend(web):
    web.save(MINE, 'PR-0001', 'pending', 1)
    cursor = encode_cursor(PageCursor(T0, f'{MINE}/PR-0001:pending:u1'))
    answers = {}
    for path, parameter in HOSTILE:
        response = web.get(path.format(cursor=cursor))
        answers[path[:80]] = (response.status_code, parameter in response.text)
    assert {path: answer for path, answer in answers.items()
            if answer[0] not in (400, 422) or not answer[1]} == {}


def test_what_is_well_formed_is_answered_truthfully(web):
    """At the bounds, or merely unusual: an answer, not a refusal."""
    web.save(MINE, 'PR-0001', 'pending', 1)
    # No event can have a request id of 128 characters that nobody stored.
    assert web.get('/api/requests/' + 'P' * 128 + '/timeline').status_code == 404
    for path in ('/api/events?request_id=' + 'P' * 128, '/api/events?request_id=%E2%82%AC',
                 '/api/events?request_id=PR-%22%27%5C%24where', '/api/events?offset=10000',
                 '/api/events?request_id=%7B%22%24ne%22%3A1%7D',
                 '/api/events?request_id=PR-0001%25', '/api/events?request_id=PR-000_'):
        response = web.get(path)
        assert (response.status_code, response.json()) == (200, []), path
    for path in ('/api/events?limit=200', '/api/events/export?format=ndjson&limit=1000'):
        response = web.get(path)
        assert response.status_code == 200, (path, response.text)
        assert 'PR-0001' in response.text
    # A cursor of an event nobody stored, far in the past or future, is a place like another.
    for moment in ('1970-01-01T00:00:00+00:00', '9998-12-31T00:00:00+00:00'):
        cursor = cursor_of([moment, 'EIN-0/nobody'])
        assert web.get(f'/api/events?after={cursor}').status_code == 200
        assert web.get(f'/api/events?before={cursor}').status_code == 200


def context_headers(web: Web, **replaced: str) -> Dict[str, str]:
    headers = {'X-Connect-Installation-Id': MINE, 'X-Connect-Config': json.dumps(web.config),
               'X-Connect-Environment-Type': 'development', 'X-Connect-Call-Source': 'ui',
               'X-Connect-Call-Type': 'user'}
    headers.update(replaced)
    return headers


@pytest.mark.parametrize(('forged', 'named'), [
    ({'X-Connect-Installation-Id': '\x7f'}, 'X-Connect-Installation-Id'),
    ({'X-Connect-Installation-Id': 'EIN-\x01'}, 'X-Connect-Installation-Id'),
    ({'X-Connect-Installation-Id': 'E' * 129}, 'X-Connect-Installation-Id'),
    ({'X-Connect-Installation-Id': ''}, 'X-Connect-Installation-Id'),
    ({'X-Connect-Environment-Type': 'bogus'}, 'X-Connect-Environment-Type'),
    ({'X-Connect-Call-Source': 'nowhere'}, 'X-Connect-Call-Source'),
    ({'X-Connect-Call-Type': 'root'}, 'X-Connect-Call-Type'),
    ({'X-Connect-Config': 'not json'}, 'X-Connect-Config'),
    ({'X-Connect-Config': '["a list"]'}, 'X-Connect-Config'),
    ({'X-Connect-Config': '{' * 5000}, 'X-Connect-Config'),
])
def test_forged_call_context_headers_are_refused(any_web, forged, named):
    for path in ROUTES:
        response = any_web.raw_get(path, list(context_headers(any_web, **forged).items()))
        assert response.status_code == 400, (path, response.text)
        assert named in response.json()['detail']
        assert 'PR-' not in response.text


def test_repeated_context_headers_are_refused(any_web):
    for name in ('X-Connect-Installation-Id', 'X-Connect-Config'):
        headers = list(context_headers(any_web).items())
        headers.append((name.lower(), dict(headers)[name]))
        for path in ROUTES:
            response = any_web.raw_get(path, headers)
            assert response.status_code == 400, (name, path, response.text)
            assert name in response.json()['detail']


def test_a_latin_1_installation_header_is_an_installation_like_another(any_web):
    """Headers are Latin-1: an id no gateway gives, yet one every backend can look up."""
    headers = list(context_headers(any_web).items())
    headers[0] = ('X-Connect-Installation-Id', 'EIN-\xe9'.encode('latin-1'))
    response = any_web.raw_get('/api/events', headers)
    assert (response.status_code, response.json()) == (200, [])


def test_a_config_that_names_no_usable_backend_is_a_configuration_problem(any_web):
    """Only the runner sets X-Connect-Config; if it held nonsense, the answer says which
    variable, as for a misconfiguration, and never repeats the value."""
    config = json.dumps({'STORAGE_BACKENDS': 'nonsense', 'DATA_API_KEY': 'S3cretKey'})
    for path in ROUTES:
        if path == '/api/schema':
            continue  # needs no storage
        response = any_web.raw_get(path, list(context_headers(
            any_web, **{'X-Connect-Config': config}).items()))
        assert response.status_code == 503, (path, response.text)
        assert 'STORAGE_BACKENDS' in response.json()['detail']
        assert 'S3cretKey' not in response.text


@pytest.fixture
def any_web(request) -> Iterator[Web]:
    """For what is decided before any read: one backend is enough."""
    yield from web_for('fake', request)
