"""A delay on every emulated Connect API call, so that local runs show a realistic cost.

Locally the API answers in well under a millisecond; the real one takes tens of
milliseconds, and the runner makes up to three calls per task, one task at a time
(managers/base.py `submit`: count, object, installation, each awaited before the next
task is read). The websocket is not delayed: it stays open, as with Connect.
"""
import asyncio

from aiohttp import hdrs, web

from localdev.connect_emulator.rest import Handler


class ApiLatency:
    """The delay, changeable while the emulation runs (the benchmark steps through a few)."""

    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds

    @property
    def seconds(self) -> float:
        return self._seconds

    @seconds.setter
    def seconds(self, value: float) -> None:
        if value < 0:
            raise ValueError(f'the API latency must be 0 or more, got {value:g}s')
        self._seconds = value

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._seconds and request.headers.get(hdrs.UPGRADE, '').lower() != 'websocket':
            await asyncio.sleep(self._seconds)
        return await handler(request)
