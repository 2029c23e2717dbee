"""`make demo ARGS=--keep-running`: the printed address shows each installation's events,
an event file dropped in while it runs shows up there, and the portal's buttons uninstall
the installation and run the data lifecycle job, which purges its events; Ctrl+C stops it
cleanly."""
import asyncio
import json
import os
import re
import signal
import sys

import httpx
import pytest

from localdev.offline import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

STARTUP_SECONDS = 150
APPEAR_SECONDS = 60


async def line_matching(stream: asyncio.StreamReader, pattern: str, seen: list) -> re.Match:
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError(f'the demo ended before printing {pattern!r}:\n{"".join(seen)}')
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match


async def events_of(client: httpx.AsyncClient, origin: str) -> list:
    response = await client.get(f'{origin}/api/events')
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_printed_portal_shows_stored_events_and_new_files_as_they_come(
    tmp_path, purchase_request, installation,
):
    events = tmp_path / 'events'
    events.mkdir()
    (events / '01.json').write_text(json.dumps(
        {'installation': installation, 'request': purchase_request('PR-1000-0000-0000-001')},
    ))
    demo = await asyncio.create_subprocess_exec(
        sys.executable, '-m', 'localdev.demo', '--keep-running', '--events', str(events),
        '--set', f'DATABASE_URL=sqlite:///{tmp_path}/demo.sqlite3',
        '--set', 'ON_UNINSTALL=purge', '--set', 'PURGE_GRACE_DAYS=0',
        '--log-file', str(tmp_path / 'demo.log'),
        cwd=REPO_ROOT, env={**os.environ, 'PYTHONUNBUFFERED': '1'},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output: list = []
    try:
        opened = await asyncio.wait_for(
            line_matching(demo.stdout, r'^Open (http://127\.0\.0\.1:\d+/) ', output),
            STARTUP_SECONDS,
        )
        await asyncio.wait_for(line_matching(demo.stdout, r'^Watching ', output), 10)
        async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
            portal = (await client.get(opened.group(1))).text
            origin = re.search(
                r'<a href="(http://127\.0\.0\.1:\d+)/static/index\.html">standalone</a>'
                r'</td></tr>', portal[portal.index(installation['id']):],
            ).group(1)
            assert [item['request_id'] for item in await events_of(client, origin)] == [
                'PR-1000-0000-0000-001',
            ]

            (events / '02.json').write_text(json.dumps({
                'installation': installation,
                'request': purchase_request('PR-2000-0000-0000-001', 'approved'),
            }))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + APPEAR_SECONDS
            while len(await events_of(client, origin)) < 2:
                assert loop.time() < deadline, 'the new event file never showed up'
                await asyncio.sleep(0.5)
            assert [item['request_id'] for item in await events_of(client, origin)][0] == (
                'PR-2000-0000-0000-001'  # newest first
            )
            # Its row lined up under the table.
            await asyncio.wait_for(line_matching(demo.stdout, r'^PR-2000-', output), 10)

            # The buttons, as the portal's page posts them.
            portal_origin = opened.group(1).rstrip('/')
            for path, form in ((f'/installations/{installation["id"]}/status',
                                {'status': 'uninstalled'}),
                               ('/schedules/run', {'method': 'run_data_lifecycle'})):
                pressed = await client.post(f'{portal_origin}{path}', data=form,
                                            headers={'Origin': portal_origin})
                assert pressed.status_code == 303, pressed.text
            assert await events_of(client, origin) == []  # purged
            done = re.findall(r'<li>[\d:]+: ([^<]*)</li>',
                              (await client.get(opened.group(1))).text)
            assert done[0].startswith('Data lifecycle job: done (deleted 2: 2 purged')
            assert done[1].startswith(f'{installation["id"]} uninstalled: done')
            await asyncio.wait_for(line_matching(
                demo.stdout, r'^Data lifecycle +job +all .* deleted 2: 2 purged', output), 10)

        demo.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(demo.communicate(), 60)
        output.append(rest.decode())
        assert demo.returncode == 0, ''.join(output)
        assert 'Stopped.' in output[-1]
    finally:
        if demo.returncode is None:
            demo.send_signal(signal.SIGTERM)
            await demo.wait()
