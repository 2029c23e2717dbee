"""`make bench`, reads: pages of one installation's events among many, on SQLite,
PostgreSQL, MongoDB (the driver backend) and the Data API (the local server over MongoDB).

An installation holding 1,000,000 stored events, interleaved with other installations' events
(half as many again, over 20 installations), is bulk-loaded (`reads_sql`, `reads_mongo`) and
migrated by the extension as an existing database. The MongoDB server here is SecantusDB, a
pure-Python server whose reads cost grows with the installation (see `reads_mongo` and the
report's pymongo row), so the MongoDB backends get their own, smaller, count. Then the web
application answers `GET /api/events` as the Events page calls it: the first page, pages
reached by following the Link header's next cursor (page 1,000: 999 links followed once,
then the call at that cursor measured), an offset page within MAX_OFFSET, each for all
statuses and for one, and a request's timeline; called in process through an ASGI transport
as the runner's web worker calls it, one at a time. Every page's events are checked against
the data set before it is timed.

    python -m localdev.bench.reads [--events 1000000] [--mongo-events 6000] [--requests 200]
"""
import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import httpx
from fastapi import FastAPI

from connect_mongodb_example.storage.registry import close_all
from connect_mongodb_example.webapp import MAX_OFFSET, EventsWebApplication
from localdev.bench import reads_mongo, reads_sql
from localdev.bench.dataapi import dataapi_server, handler_config
from localdev.bench.reads_data import (
    TARGET,
    expected_page,
    matching,
    newest_request,
    total_rows,
)
from localdev.bench.reads_timing import P99_TARGET_MS, ReadResult, time_calls
from localdev.bench.sql import postgres_database, postgres_version
from localdev.mongodb_server import available

BACKENDS = ('sqlite', 'postgresql', 'mongodb', 'dataapi')
EVENTS, REQUESTS = 1_000_000, 200
#: SecantusDB reads every event of the installation for any page (see the docs): at 6,000
#: a call takes about a second; 1,000,000 would take minutes a call.
MONGO_EVENTS, MONGO_REQUESTS = 6_000, 20
QUICK_EVENTS, QUICK_REQUESTS = 6_000, 20
QUICK_MONGO_EVENTS, QUICK_MONGO_REQUESTS = 600, 5
PAGE_SIZE = 50
PAGES = (1, 100, 1000)
STATUS = 'approved'


@dataclass(frozen=True)
class Case:
    name: str
    status: Optional[str]
    #: Events before the page (0 for the first), and how it is reached: 'first', 'cursor'
    #: (following next links), 'offset', or 'timeline' (a request's, not a page).
    depth: int
    how: str


@dataclass(frozen=True)
class Shape:
    """What is read: the pages, their size, and the offset page's offset."""
    pages: Sequence[int] = PAGES
    page_size: int = PAGE_SIZE
    offset: int = MAX_OFFSET


@dataclass
class ReadBench:
    results: List[ReadResult] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def read_cases(target_events: int, shape: Shape) -> Tuple[List[Case], List[str]]:
    """Every measured call, and why the pages the installation is too small for are not."""
    cases, skipped = [], []
    for status in (None, STATUS):
        suffix = f', {status}' if status else ''
        events = matching(target_events, status)
        for page in shape.pages:
            depth = (page - 1) * shape.page_size
            name = 'page 1' if page == 1 else f'page {page:,} (cursor)'
            if depth >= events:
                skipped.append(f'{name}{suffix}')
                continue
            cases.append(Case(name + suffix, status, depth, 'first' if page == 1 else 'cursor'))
        if 0 < shape.offset < events:
            cases.append(Case(f'offset {shape.offset:,}{suffix}', status, shape.offset, 'offset'))
        elif shape.offset:
            skipped.append(f'offset {shape.offset:,}{suffix}')
    cases.append(Case('timeline', None, 0, 'timeline'))
    return cases, skipped


def web_application() -> FastAPI:
    """The web application's routes mounted as the runner mounts them (under /api)."""
    app = FastAPI()
    authenticated, _ = EventsWebApplication.get_routers()
    app.include_router(authenticated, prefix='/api')
    return app


async def get_ok(client: httpx.AsyncClient, url: str) -> httpx.Response:
    response = await client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f'GET {url}: HTTP {response.status_code} {response.text[:200]}')
    return response


async def locate(client: httpx.AsyncClient, case: Case, target_events: int,
                 page_size: int) -> str:
    """The URL of the measured call; a cursor page is reached as the page reaches it, by
    following rel=next links from the first page."""
    if case.how == 'timeline':
        return f'/api/requests/{newest_request(target_events)}/timeline'
    url = f'/api/events?limit={page_size}' + (f'&status={case.status}' if case.status else '')
    if case.how == 'offset':
        return f'{url}&offset={case.depth}'
    for _ in range(case.depth // page_size if case.how == 'cursor' else 0):
        url = (await get_ok(client, url)).links['next']['url']
    return url


def check(case: Case, response: httpx.Response, target_events: int, page_size: int) -> None:
    """The answer holds the events the data set says, in page order."""
    body = response.json()
    if case.how == 'timeline':
        wanted = newest_request(target_events)
        if body['request_id'] != wanted or not body['events']:
            raise RuntimeError(f'timeline: not the events of {wanted}')
        return
    got = [event['request_id'] for event in body]
    wanted_ids = expected_page(target_events, case.status, case.depth, page_size)
    if got != wanted_ids:
        raise RuntimeError(f'{case.name}: got {got[:3]}..., expected {wanted_ids[:3]}...')


async def measure_reads(backend: str, config: Dict[str, str], target_events: int,
                        requests: int, shape: Shape, notes: List[str]) -> List[ReadResult]:
    headers = {'X-Connect-Installation-Id': TARGET, 'X-Connect-Config': json.dumps(config)}
    transport = httpx.ASGITransport(app=web_application())
    cases, skipped = read_cases(target_events, shape)
    if skipped:
        notes.append(f'{backend}: not read (the installation is too small): '
                     f'{"; ".join(skipped)}.')
    results = []
    async with httpx.AsyncClient(transport=transport, base_url='http://localhost',
                                 headers=headers) as client:
        for case in cases:
            started = time.monotonic()
            url = await locate(client, case, target_events, shape.page_size)
            if case.how == 'cursor':
                notes.append(f'{backend}: {case.name} reached by {case.depth // shape.page_size:,}'
                             f' next links in {time.monotonic() - started:.1f}s.')
            check(case, await get_ok(client, url), target_events, shape.page_size)
            results.append(await time_calls(
                backend, case.name, lambda url=url: get_ok(client, url), requests))
    await close_all()
    # The machine may be shared: how busy it was is part of the figures.
    notes.append(f'{backend}: load average {os.getloadavg()[0]:.1f} after the reads.')
    return results


async def run_sql(bench: ReadBench, backends: Sequence[str], target_events: int,
                  requests: int, shape: Shape) -> None:
    with tempfile.TemporaryDirectory(prefix='bench-reads-') as directory:
        if 'sqlite' in backends:
            url = f'sqlite:///{os.path.join(directory, "reads.sqlite3")}'
            bench.notes.append(await reads_sql.prepare('sqlite', url, target_events))
            bench.results += await measure_reads(
                'sqlite', {'STORAGE_BACKENDS': 'sql', 'DATABASE_URL': url}, target_events,
                requests, shape, bench.notes)
    if 'postgresql' in backends:
        with postgres_database() as (url, where):
            bench.notes.append(f'postgresql: PostgreSQL {postgres_version(url)}, '
                               f'a fresh database on {where}.')
            bench.notes.append(await reads_sql.prepare('postgresql', url, target_events))
            bench.results += await measure_reads(
                'postgresql', {'STORAGE_BACKENDS': 'sql', 'DATABASE_URL': url}, target_events,
                requests, shape, bench.notes)


async def run_mongo(bench: ReadBench, backends: Sequence[str], target_events: int,
                    requests: int, shape: Shape) -> None:
    """Both MongoDB backends on one SecantusDB collection, with the server's own cost
    (bare PyMongo, the same query) beside them."""
    reason = available()
    if reason:
        bench.notes.append(f'mongodb, dataapi: not measured: {reason}.')
        return
    with reads_mongo.secantus() as server:
        bench.notes.append(f'mongodb, dataapi: SecantusDB on loopback, {target_events:,} events '
                           f'of the installation among {total_rows(target_events):,}.')
        bench.notes.append(await reads_mongo.prepare(server.uri(), target_events))
        for status, hint, case in ((None, True, 'page 1, find alone'),
                                   (STATUS, True, f'page 1, {STATUS}, find alone'),
                                   (STATUS, False, f'page 1, {STATUS}, no hint')):
            call, stats = reads_mongo.direct_page(server.uri(), shape.page_size, status, hint)
            try:
                examined = {name: f'{stats[name]:,}' if isinstance(stats.get(name), int)
                            else '?' for name in ('totalDocsExamined', 'totalKeysExamined')}
                bench.notes.append(
                    f'pymongo: {case}: SecantusDB\'s explain says {examined["totalDocsExamined"]}'
                    f' documents and {examined["totalKeysExamined"]} index keys examined for '
                    f'{shape.page_size + 1} returned.')
                bench.results.append(await time_calls('pymongo', case, call, requests))
            finally:
                call.close()  # type: ignore[attr-defined]
        if 'mongodb' in backends:
            bench.results += await measure_reads(
                'mongodb', reads_mongo.driver_config(server.uri()), target_events, requests,
                shape, bench.notes)
        if 'dataapi' in backends:
            async with dataapi_server(mongodb_uri=server.uri()) as base_url:
                bench.results += await measure_reads(
                    'dataapi', handler_config(base_url, reads_mongo.COLLECTION),
                    target_events, requests, shape, bench.notes)


async def run(backends: Sequence[str], counts: Dict[str, Tuple[int, int]],
              shape: Shape = Shape()) -> ReadBench:
    """`counts`: (events of the installation, measured calls per row) of 'sql' and 'mongo'."""
    bench = ReadBench()
    if {'sqlite', 'postgresql'} & set(backends):
        await run_sql(bench, backends, *counts['sql'], shape)
    if {'mongodb', 'dataapi'} & set(backends):
        await run_mongo(bench, backends, *counts['mongo'], shape)
    return bench


def report(bench: ReadBench, counts: Dict[str, Tuple[int, int]], shape: Shape) -> str:
    sql, mongo = counts['sql'][0], counts['mongo'][0]
    lines = [
        f'Reads: GET /api/events of one installation, {shape.page_size} per page, one call '
        f'at a time (target: p99 <= {P99_TARGET_MS:g} ms); SQL: {sql:,} events among '
        f'{total_rows(sql):,}; MongoDB, Data API: {mongo:,} among {total_rows(mongo):,}.',
        *bench.notes,
        f'{"backend":<11} {"call":<30} {"calls":>6} {"p50 ms":>8} {"p99 ms":>8}',
        '-' * 71,
    ]
    for result in bench.results:
        lines.append(f'{result.backend:<11} {result.case:<30} {result.requests:>6} '
                     f'{result.p50_ms:>8.2f} {result.p99_ms:>8.2f} {result.verdict}')
    return '\n'.join(lines)


async def bench(quick: bool) -> str:
    """The report `make bench` prints (`--quick`: a smoke run on small installations)."""
    counts = ({'sql': (QUICK_EVENTS, QUICK_REQUESTS),
               'mongo': (QUICK_MONGO_EVENTS, QUICK_MONGO_REQUESTS)} if quick
              else {'sql': (EVENTS, REQUESTS), 'mongo': (MONGO_EVENTS, MONGO_REQUESTS)})
    return report(await run(BACKENDS, counts), counts, Shape())


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m localdev.bench.reads',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--events', type=int, default=EVENTS,
                        help=f'SQL: events of the installation read (default {EVENTS})')
    parser.add_argument('--requests', type=int, default=REQUESTS,
                        help=f'SQL: measured calls per row (default {REQUESTS})')
    parser.add_argument('--mongo-events', type=int, default=MONGO_EVENTS,
                        help=f'MongoDB, Data API: the same (default {MONGO_EVENTS})')
    parser.add_argument('--mongo-requests', type=int, default=MONGO_REQUESTS,
                        help=f'MongoDB, Data API: the same (default {MONGO_REQUESTS})')
    parser.add_argument('--backends', default=','.join(BACKENDS),
                        help=f'comma-separated, from {", ".join(BACKENDS)} (default: all)')
    parser.add_argument('--pages', default=','.join(map(str, PAGES)),
                        help='pages read (default 1,100,1000); beyond 1, by cursor')
    parser.add_argument('--page-size', type=int, default=PAGE_SIZE)
    parser.add_argument('--offset', type=int, default=MAX_OFFSET,
                        help=f'the offset page read (default {MAX_OFFSET}; 0: none)')
    options = parser.parse_args(argv)
    options.backends = [name.strip() for name in options.backends.split(',') if name.strip()]
    unknown = sorted(set(options.backends) - set(BACKENDS))
    if unknown or not options.backends:
        parser.error(f'--backends: unknown {", ".join(unknown) or "(none given)"}')
    try:
        options.pages = sorted({int(page) for page in options.pages.split(',')})
    except ValueError:
        parser.error('--pages: comma-separated page numbers')
    if min(options.events, options.mongo_events) < options.page_size or min(
            options.requests, options.mongo_requests) < 1 or options.pages[0] < 1:
        parser.error('--events and --mongo-events must hold a page, --requests and '
                     '--mongo-requests and pages be at least 1')
    if not 1 <= options.page_size <= 100 or not 0 <= options.offset <= MAX_OFFSET:
        parser.error(f'--page-size is 1 to 100, --offset 0 to {MAX_OFFSET}')
    return options


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parse_args(argv)
    counts = {'sql': (options.events, options.requests),
              'mongo': (options.mongo_events, options.mongo_requests)}
    shape = Shape(options.pages, options.page_size, options.offset)
    print(report(asyncio.run(run(options.backends, counts, shape)), counts, shape))
    return 0


if __name__ == '__main__':
    sys.exit(main())
