"""Headless Chromium (Debian's `chromium` package, or Chrome), to load a page as a browser does.

Run as a subprocess of the event loop (the page's server usually runs in the same loop, so a
blocking call would leave it unanswered). `--virtual-time-budget` lets the page run its
scripts and fetches before the DOM is dumped or the screenshot taken. `session()` drives a
page as a user does (clicks, downloads) over the DevTools protocol, with aiohttp's
websocket client.
"""
import asyncio
import itertools
import json
import shutil
import struct
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

import aiohttp

#: Debian's package, other distributions' name, and Chrome (preinstalled on GitHub's runners).
CANDIDATES = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
#: Page time the scripts get (virtual: it does not elapse while a fetch is out).
DEFAULT_BUDGET_MS = 4000
RUN_TIMEOUT_SECONDS = 90
#: How long a browser gets to close by itself before it is killed.
CLOSE_TIMEOUT_SECONDS = 10


def find_chromium() -> Optional[str]:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    def __init__(self, executable: str):
        self.executable = executable

    def _command(self, profile: str, budget_ms: int, *extra: str) -> List[str]:
        return [
            self.executable, '--headless', '--no-sandbox', '--disable-gpu',
            '--disable-dev-shm-usage', '--disable-background-networking',
            '--disable-component-update', '--disable-sync', '--no-first-run',
            '--no-proxy-server', f'--user-data-dir={profile}',
            f'--virtual-time-budget={budget_ms}', *extra,
        ]

    async def _run(self, budget_ms: int, *extra: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix='chromium-profile-') as profile:
            process = await asyncio.create_subprocess_exec(
                *self._command(profile, budget_ms, *extra),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                stdout, stderr = await asyncio.wait_for(
                    process.communicate(), RUN_TIMEOUT_SECONDS,
                )
            except BaseException:
                process.kill()
                await process.wait()
                raise
        if process.returncode != 0:
            raise RuntimeError(f'chromium exited with {process.returncode}: '
                               f'{stderr.decode(errors="replace")[-2000:]}')
        return stdout

    async def dump_dom(self, url: str, budget_ms: int = DEFAULT_BUDGET_MS) -> str:
        """The page's DOM once its scripts have run, as HTML."""
        return (await self._run(budget_ms, '--dump-dom', url)).decode('utf-8', 'replace')

    async def screenshot(
        self, url: str, path: Path, size: Tuple[int, int] = (1280, 800),
        budget_ms: int = DEFAULT_BUDGET_MS,
    ) -> None:
        await self._run(budget_ms, f'--screenshot={path}', f'--window-size={size[0]},{size[1]}',
                        '--hide-scrollbars', url)


    @asynccontextmanager
    async def session(self, downloads: Optional[Path] = None) -> AsyncIterator['BrowserTab']:
        """One tab of a browser running meanwhile; files it downloads go to `downloads`."""
        profile = tempfile.mkdtemp(prefix='chromium-profile-')
        process = await asyncio.create_subprocess_exec(
            self.executable, '--headless', '--no-sandbox', '--disable-gpu',
            '--disable-dev-shm-usage', '--disable-background-networking',
            '--disable-component-update', '--disable-sync', '--no-first-run',
            '--no-proxy-server', f'--user-data-dir={profile}',
            '--remote-debugging-port=0', 'about:blank',
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            address = await _devtools_address(Path(profile), process)
            async with aiohttp.ClientSession() as http, http.ws_connect(
                    address, max_msg_size=0) as socket:
                tab = BrowserTab(socket)
                reader = asyncio.create_task(tab.read())
                try:
                    await tab.open(downloads)
                    yield tab
                    # Closed by itself, the browser stops its helper processes too.
                    await socket.send_str(json.dumps({'id': 0, 'method': 'Browser.close'}))
                    await asyncio.wait_for(process.wait(), CLOSE_TIMEOUT_SECONDS)
                except asyncio.TimeoutError:
                    pass
                finally:
                    reader.cancel()
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
            # A helper process may still be writing to the profile as it goes.
            shutil.rmtree(profile, ignore_errors=True)


class BrowserTab:
    """A page, driven over the DevTools protocol (one websocket to the browser)."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse):
        self._socket = socket
        self._ids = itertools.count(1)
        self._answers: Dict[int, asyncio.Future[Dict[str, Any]]] = {}
        self._session: Optional[str] = None

    async def read(self) -> None:
        async for message in self._socket:
            data = json.loads(message.data)
            waiting = self._answers.pop(data.get('id'), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(data)

    async def send(self, method: str, session: bool = True, **params: Any) -> Dict[str, Any]:
        number = next(self._ids)
        message: Dict[str, Any] = {'id': number, 'method': method, 'params': params}
        if session:
            message['sessionId'] = self._session
        self._answers[number] = asyncio.get_running_loop().create_future()
        await self._socket.send_str(json.dumps(message))
        answer = await asyncio.wait_for(self._answers[number], RUN_TIMEOUT_SECONDS)
        if 'error' in answer:
            raise RuntimeError(f'{method}: {answer["error"]}')
        return answer.get('result', {})

    async def open(self, downloads: Optional[Path]) -> None:
        target = await self.send('Target.createTarget', session=False, url='about:blank')
        attached = await self.send('Target.attachToTarget', session=False,
                                   targetId=target['targetId'], flatten=True)
        self._session = attached['sessionId']
        if downloads is not None:
            await self.send('Browser.setDownloadBehavior', session=False, behavior='allow',
                            downloadPath=str(downloads))

    async def goto(self, url: str) -> None:
        # A mark on the page being left: the new one is loaded once it is gone.
        await self.evaluate('window.leaving = true')
        await self.send('Page.navigate', url=url)
        await self.wait_for('!window.leaving && document.readyState === "complete"')

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when a promise)."""
        result = await self.send('Runtime.evaluate', expression=expression, awaitPromise=True,
                                 returnByValue=True)
        if 'exceptionDetails' in result:
            raise RuntimeError(f'{expression}: {result["exceptionDetails"]}')
        return result['result'].get('value')

    async def wait_for(self, condition: str, timeout: float = 30) -> Any:
        """Wait until the JavaScript `condition` is true in the page; its last value."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                value = await self.evaluate(condition)
            except RuntimeError:
                value = None  # the page is navigating
            if value or asyncio.get_running_loop().time() > deadline:
                return value
            await asyncio.sleep(0.1)


async def _devtools_address(profile: Path, process: asyncio.subprocess.Process) -> str:
    """The browser's DevTools websocket, which Chromium writes to its profile once it
    listens (`--remote-debugging-port=0` picks a free port)."""
    written = profile / 'DevToolsActivePort'
    for _ in range(RUN_TIMEOUT_SECONDS * 10):
        if written.exists():
            lines = written.read_text().split()
            if len(lines) == 2:
                return f'ws://127.0.0.1:{lines[0]}{lines[1]}'
        if process.returncode is not None:
            break
        await asyncio.sleep(0.1)
    raise RuntimeError('chromium did not open its DevTools port')


def png_size(data: bytes) -> Tuple[int, int]:
    """(width, height) of a PNG image; ValueError if the data is not one."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b'IHDR':
        raise ValueError('not a PNG image')
    return struct.unpack('>II', data[16:24])
