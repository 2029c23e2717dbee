"""Headless Chromium (Debian's `chromium` package, or Chrome), to load a page as a browser does.

Run as a subprocess of the event loop (the page's server usually runs in the same loop, so a
blocking call would leave it unanswered). `--virtual-time-budget` lets the page run its
scripts and fetches before the DOM is dumped or the screenshot taken.
"""
import asyncio
import shutil
import struct
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

#: Debian's package, other distributions' name, and Chrome (preinstalled on GitHub's runners).
CANDIDATES = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
#: Page time the scripts get (virtual: it does not elapse while a fetch is out).
DEFAULT_BUDGET_MS = 4000
RUN_TIMEOUT_SECONDS = 90


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


def png_size(data: bytes) -> Tuple[int, int]:
    """(width, height) of a PNG image; ValueError if the data is not one."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b'IHDR':
        raise ValueError('not a PNG image')
    return struct.unpack('>II', data[16:24])
