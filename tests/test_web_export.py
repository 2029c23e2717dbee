"""GET /api/events/export on every backend: the download is exactly the stored events of the
calling installation, CSV or NDJSON, in parts of bounded size that continue each other."""
import csv
import io
import json
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from connect_mongodb_example.event_export import PART_BYTES, READ_EVENTS
from connect_mongodb_example.event_record import STORED_FIELDS, EventRecord
from connect_mongodb_example.event_views import iso_utc
from tests.support.web import MINE, THEIRS, Web, links, web_for, web_targets

FIELDS = [name for name, _ in STORED_FIELDS]


@pytest.fixture(params=web_targets())
def web(request) -> Iterator[Web]:
    yield from web_for(request.param, request)


def expected(record: EventRecord, deliveries: int = 1) -> Dict[str, Any]:
    """An event as the download must give it: every stored field, as it was stored."""
    event = {name: getattr(record, name) for name in FIELDS}
    event.update(received_at=iso_utc(record.received_at), delivery_count=deliveries,
                 last_received_at=iso_utc(record.received_at))
    return event


def csv_events(body: str) -> List[Dict[str, Any]]:
    # A request document can be longer than the 128 KiB Python's csv reader takes by default.
    csv.field_size_limit(2 ** 31 - 1)
    rows = list(csv.DictReader(io.StringIO(body)))
    for row in rows:
        assert list(row) == FIELDS
        row['request'] = json.loads(row['request'])
        row['delivery_count'] = int(row['delivery_count'])
        for name, value in row.items():
            if value == '':
                row[name] = None
    return rows


def ndjson_events(body: str) -> List[Dict[str, Any]]:
    assert body == '' or body.endswith('\n')
    return [json.loads(line) for line in body.splitlines()]


PARSE = {'csv': csv_events, 'ndjson': ndjson_events}


def download(web: Web, export: str, installation: str = MINE, limit: int = 0,
             ) -> Tuple[str, List[Any]]:
    """The whole export, part after part as the Link headers lead; (body, answers)."""
    url = f'/api/events/export?format={export}' + (f'&limit={limit}' if limit else '')
    body, answers = '', []
    while url:
        response = web.get(url, installation=installation)
        assert response.status_code == 200, response.text
        answers.append(response)
        body += response.text
        url = links(response).get('next')
    return body, answers


@pytest.mark.parametrize('export', ['csv', 'ndjson'])
def test_the_download_is_the_installations_stored_events(web, export):
    mine = [web.save(MINE, 'PR-0001', 'pending', 1), web.save(MINE, 'PR-0002', 'pending', 2),
            web.save(MINE, 'PR-0001', 'approved', 3, note='ünïcödé, "quoted"\nnew line')]
    theirs = [web.save(THEIRS, 'PR-0001', 'pending', 4),
              web.save(THEIRS, 'PR-0009', 'inquiring', 5)]
    web.save(None, 'PR-0010', 'pending', 6)
    web.save(MINE, 'PR-0002', 'pending', 7, updated='u2')  # a redelivery

    body, [answer] = download(web, export)
    assert answer.headers['content-type'].startswith(
        {'csv': 'text/csv', 'ndjson': 'application/x-ndjson'}[export])
    assert answer.headers['content-disposition'] == (
        f'attachment; filename="events-{MINE}.{export}"')
    assert answer.headers['x-export-events'] == '3'
    got = PARSE[export](body)
    want = [expected(mine[2]), expected(mine[1], deliveries=2), expected(mine[0])]
    want[1]['last_received_at'] = '2026-11-20T10:00:07Z'
    assert got == want

    their_body, _ = download(web, export, installation=THEIRS)
    assert PARSE[export](their_body) == [expected(theirs[1]), expected(theirs[0])]
    assert MINE not in their_body
    assert THEIRS not in body
    assert 'PR-0010' not in body + their_body


@pytest.mark.parametrize('export', ['csv', 'ndjson'])
def test_parts_continue_each_other_into_the_whole_export(web, export):
    for number in range(7):
        web.save(MINE, f'PR-{number:04d}', 'pending', number)
    whole, [single] = download(web, export)
    assert 'link' not in single.headers

    parts, answers = download(web, export, limit=3)
    assert [answer.headers['x-export-events'] for answer in answers] == ['3', '3', '1']
    assert parts == whole
    if export == 'csv':
        # Only the first part has the header row: the parts put end to end are one file.
        assert [answer.text.count('key,request_id,') for answer in answers] == [1, 0, 0]


def test_events_arriving_during_an_export_are_not_in_it_and_move_nothing(web):
    for number in range(6):
        web.save(MINE, f'PR-{number:04d}', 'pending', number)
    before, _ = download(web, 'ndjson')
    first = web.get('/api/events/export?format=ndjson&limit=2')
    web.save(MINE, 'PR-0100', 'pending', 100)
    web.save(MINE, 'PR-0004', 'pending', 101, updated='u4')  # a redelivery
    rest, _ = download_from(web, links(first)['next'])
    keys = [event['key'] for event in ndjson_events(first.text + rest)]
    assert keys == [event['key'] for event in ndjson_events(before)]


def download_from(web: Web, url: str) -> Tuple[str, List[Any]]:
    body, answers = '', []
    while url:
        response = web.get(url)
        answers.append(response)
        body += response.text
        url = links(response).get('next')
    return body, answers


@pytest.mark.parametrize('export', ['csv', 'ndjson'])
def test_parts_are_bounded_in_bytes(web, export):
    """Requests of 300 KB: a part stops before the event that would take it past
    PART_BYTES, so each answer fits one web-task message; a part has at least one event."""
    big = 'x' * 300_000
    for number in range(5):
        web.save(MINE, f'PR-{number:04d}', 'pending', number, note=big)
    web.save(MINE, 'PR-HUGE', 'pending', 10, note='y' * (PART_BYTES + 1))

    body, answers = download(web, export)
    sizes = [len(answer.content) for answer in answers]
    assert [answer.headers['x-export-events'] for answer in answers] == ['1', '3', '2']
    assert sizes[0] > PART_BYTES  # the one event over the bound, alone
    assert all(size <= PART_BYTES for size in sizes[1:])
    assert [event['request_id'] for event in PARSE[export](body)] == [
        'PR-HUGE', 'PR-0004', 'PR-0003', 'PR-0002', 'PR-0001', 'PR-0000']


@pytest.mark.parametrize('export', ['csv', 'ndjson'])
def test_an_installation_without_events_downloads_an_empty_file(web, export):
    web.save(THEIRS, 'PR-0001', 'pending', 1)
    body, [answer] = download(web, export)
    assert answer.headers['x-export-events'] == '0'
    # CSV: the header alone, every stored field in declaration order.
    header = ','.join(name for name, _ in STORED_FIELDS) + '\r\n'
    assert body == (header if export == 'csv' else '')
    assert header.startswith('key,request_id,status,updated,event_type,asset_id,')


@pytest.fixture
def fake_web(request) -> Iterator[Web]:
    yield from web_for('fake', request)


def test_each_storage_read_of_an_export_is_bounded(fake_web, fake_backend, monkeypatch):
    """Memory does not grow with the count: each storage read takes at most READ_EVENTS
    events, documents included."""
    reads = []
    original = fake_backend.list_events

    async def list_events(self, where, **options):
        reads.append((options['limit'], options['full']))
        return await original(self, where, **options)

    monkeypatch.setattr(fake_backend, 'list_events', list_events)
    for number in range(2 * READ_EVENTS + 10):
        fake_web.save(MINE, f'PR-{number:04d}', 'pending', number)
    body, _ = download(fake_web, 'ndjson')
    assert len(ndjson_events(body)) == 2 * READ_EVENTS + 10
    assert reads == [(READ_EVENTS, True)] * 3
