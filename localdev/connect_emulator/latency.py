"""A delay on every emulated Connect API call, so that local runs show a realistic cost.

Locally the API answers in well under a millisecond; the real one takes tens of
milliseconds, and the runner makes up to three calls per task, one task at a time
(managers/base.py `submit`: count, object, installation, each awaited before the next
task is read). The websocket is not delayed: it stays open, as with Connect.
"""
import asyncio

from aiohttp import hdrs, web

from localdev.connect_emulator.rest import Handler


def api_latency(seconds: float) -> web.middleware:
    """Middleware that answers every REST call `seconds` later (0: at once)."""
    if seconds < 0:
        raise ValueError(f'the API latency must be 0 or more, got {seconds:g}s')

    @web.middleware
    async def delay(request: web.Request, handler: Handler) -> web.StreamResponse:
        if seconds and request.headers.get(hdrs.UPGRADE, '').lower() != 'websocket':
            await asyncio.sleep(seconds)
        return await handler(request)

    return delay
