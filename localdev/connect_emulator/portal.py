"""A local stand-in for the Connect portal: the extension's pages, opened as an installation.

Plain HTTP on 127.0.0.1 (a browser needs no certificate). The portal's own page lists the
installations the emulation knows (those of the events delivered so far) and links each
one's UI pages, as the extension declared them in its web worker's setup (`@module_pages`),
shown in a portal frame (portal_pages.py) or on their own.

Below them, buttons install or uninstall an installation and run the extension's
schedulable methods now (portal_controls.py), as Connect does; they only take a POST from
the portal's own page.

Each installation gets its own origin (a port of its own): every browser call made there,
`/static/...` as well as `/api/...`, is forwarded to the runner's web worker as a web task
with that installation's call context, the way Connect's gateway does it for a user of that
account. The page keeps using root-relative URLs, as it does in Connect, and two tabs can
show two installations at once. As the gateway does, the caller's own credentials (cookies,
Authorization) and any X-Connect-* header a caller sends are not passed on: the call
context comes from the portal only.
"""
import asyncio
import logging
import socket
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Mapping, Optional, Tuple

from aiohttp import web
from connect.eaas.core.proto import HttpRequest, HttpResponse

from localdev.connect_emulator.dispatch import RunnerDisconnected
from localdev.connect_emulator.events import (
    INSTALLATION_STATUSES,
    EventFileError,
    InstallationChange,
    Item,
    ScheduleRun,
)
from localdev.connect_emulator.portal_controls import (
    ACTIONS_SHOWN,
    EmulatorActions,
    PortalActions,
    controls_section,
)
from localdev.connect_emulator.portal_pages import frame_page, index_page
from localdev.connect_emulator.webtasks import (
    CallContext,
    WebTaskError,
    decode_body,
    encode_body,
    installation_context,
)

if TYPE_CHECKING:
    from localdev.connect_emulator.server import ConnectEmulator

logger = logging.getLogger(__name__)

LOOPBACK = '127.0.0.1'
#: Per-connection headers, and those the server computes for the body it sends.
HOP_BY_HOP = frozenset({
    'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer',
    'trailers', 'transfer-encoding', 'upgrade', 'content-length', 'content-encoding',
})
#: The caller's credentials for the portal itself: the extension never sees them.
CALLER_CREDENTIALS = frozenset({'cookie', 'authorization'})
CONTEXT_HEADER_PREFIX = 'x-connect-'


def forwarded_headers(headers: Mapping[str, str]) -> Dict[str, str]:
    """The browser's headers as the gateway passes them on (repeated ones joined)."""
    kept: Dict[str, List[str]] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if (lowered in HOP_BY_HOP or lowered in CALLER_CREDENTIALS or lowered == 'host'
                or lowered.startswith(CONTEXT_HEADER_PREFIX)):
            continue
        kept.setdefault(lowered, []).append(value)
    return {name: ', '.join(values) for name, values in kept.items()}


def response_headers(headers: Mapping[str, Any]) -> Dict[str, str]:
    return {name: str(value) for name, value in headers.items()
            if name.lower() not in HOP_BY_HOP}


def ui_pages(ui_modules: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """(label, url) of every page the extension declared, in the portal's order."""
    pages = []
    modules = ui_modules.get('modules')
    if modules:
        pages.append((modules['label'], modules['url']))
        pages.extend((child['label'], child['url']) for child in modules.get('children', []))
    settings = ui_modules.get('settings')
    if settings:
        pages.append((settings['label'], settings['url']))
    for group in ('admins', 'customer'):
        pages.extend((page['label'], page['url']) for page in ui_modules.get(group, []))
    return pages


async def _listen(app: web.Application) -> Tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
    await runner.setup()
    # Bound here: port 0 picks a free port, with no window for a clash.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    return runner, port


class LocalPortal:
    """`async with LocalPortal(emulator) as portal:` then open `portal.url`. `actions` is
    what the lifecycle buttons do (by default: deliver through the emulation)."""

    def __init__(self, emulator: 'ConnectEmulator', actions: Optional[PortalActions] = None):
        self.emulator = emulator
        self.actions: PortalActions = actions or EmulatorActions(emulator)
        #: (time, what happened) of each button pressed, newest first.
        self.done: Deque[Tuple[str, str]] = deque(maxlen=ACTIONS_SHOWN)
        self._acting = asyncio.Lock()
        self._runner: Optional[web.AppRunner] = None
        self._port: Optional[int] = None
        #: installation id -> (its server, its port)
        self._origins: Dict[str, Tuple[web.AppRunner, int]] = {}
        self._opening: Optional[asyncio.Lock] = None

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([
            web.get('/', self.index),
            web.get('/installations/{installation_id}/pages/{number:\\d+}', self.frame),
            web.post('/installations/{installation_id}/status', self.change_status),
            web.post('/schedules/run', self.run_schedule),
        ])
        self._runner, self._port = await _listen(app)
        self._opening = asyncio.Lock()
        logger.info('Local portal on %s', self.url)

    async def close(self) -> None:
        for runner, _ in self._origins.values():
            await runner.cleanup()
        self._origins.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> 'LocalPortal':
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError('the portal is not started')
        return f'http://{LOOPBACK}:{self._port}/'

    async def installation_origin(self, installation_id: str) -> str:
        """`http://127.0.0.1:PORT`, where the browser acts as a user of this installation."""
        installation = self.emulator.objects.installation(installation_id)
        if installation is None:
            raise KeyError(f'installation {installation_id} is not known to the emulation')
        if self._opening is None:
            raise RuntimeError('the portal is not started')
        # One origin per installation, even when two calls ask for it at once.
        async with self._opening:
            if installation_id not in self._origins:
                context = installation_context(installation, self.emulator.account.id)
                app = web.Application()
                app.add_routes([web.route('*', '/{tail:.*}', self._forwarder(context))])
                self._origins[installation_id] = await _listen(app)
        return f'http://{LOOPBACK}:{self._origins[installation_id][1]}'

    async def page_url(self, installation_id: str, page: str = '/static/index.html') -> str:
        return await self.installation_origin(installation_id) + page

    def _forwarder(self, context: CallContext):
        async def forward(request: web.Request) -> web.StreamResponse:
            if request.path == '/':
                pages = ui_pages(self.emulator.web.ui_modules)
                if pages:
                    raise web.HTTPFound(pages[0][1])
            return await self.forward(request, context)
        return forward

    async def forward(self, request: web.Request, context: CallContext) -> web.Response:
        """One browser call, as a web task with the installation's call context."""
        call = HttpRequest(
            method=request.method,
            url=request.path_qs,
            headers=forwarded_headers(request.headers),
            content=encode_body(await request.read()),
        )
        try:
            answer: HttpResponse = await self.emulator.web.call(call, context)
        except WebTaskError as error:
            logger.warning('%s %s: %s', request.method, request.path_qs, error)
            return web.json_response(
                {'error_code': 'EMULATOR_GATEWAY', 'errors': [str(error)]}, status=error.status,
            )
        logger.debug('%s %s (%s) -> %d', request.method, request.path_qs,
                     context.installation_id, answer.status)
        return web.Response(
            status=answer.status, headers=response_headers(answer.headers),
            body=decode_body(answer.content),
        )

    async def index(self, request: web.Request) -> web.Response:
        pages = ui_pages(self.emulator.web.ui_modules)
        installations = []
        for installation in self.emulator.objects.installations():
            links = []
            for number, (label, url) in enumerate(pages):
                links.append((label, f'/installations/{installation["id"]}/pages/{number}'))
                links.append(('standalone', await self.page_url(installation['id'], url)))
            installations.append((installation, links))
        return web.Response(content_type='text/html', text=index_page(
            extension=self.emulator.service_id, environment=self.emulator.environment_id,
            worker_ready=self.emulator.web.is_ready(),
            page_labels=[label for label, _ in pages], installations=installations,
            extra=controls_section(
                schedulables=self.emulator.schedulables(),
                installations=self.emulator.objects.installations(), actions=list(self.done),
            ),
        ))

    # -- the lifecycle buttons ----------------------------------------------------------------

    async def change_status(self, request: web.Request) -> web.Response:
        """Install or uninstall an installation (form field `status`)."""
        self._check_origin(request)
        installation = self.emulator.objects.installation(request.match_info['installation_id'])
        status = (await request.post()).get('status')
        if installation is None or status not in INSTALLATION_STATUSES:
            raise web.HTTPBadRequest(text='No such installation, or a status that is not one '
                                          f'of {", ".join(INSTALLATION_STATUSES)}.')
        return await self._act(InstallationChange(installation, status, source='local portal'))

    async def run_schedule(self, request: web.Request) -> web.Response:
        """Run a schedulable method now (form fields `method`, optional `installation_id`)."""
        self._check_origin(request)
        form = await request.post()
        methods = [schedulable.method for schedulable in self.emulator.schedulables()]
        installation_id = form.get('installation_id') or None
        if form.get('method') not in methods or (
                installation_id and self.emulator.objects.installation(installation_id) is None):
            raise web.HTTPBadRequest(text='No such schedulable method or installation.')
        parameter = {'installation_id': installation_id} if installation_id else {}
        return await self._act(ScheduleRun(form['method'], parameter, source='local portal'))

    async def _act(self, item: Item) -> web.Response:
        """One button at a time; what it did goes on the page, which the browser reloads."""
        async with self._acting:
            try:
                line = await self.actions.deliver(item)
            except (EventFileError, RunnerDisconnected) as error:
                line = f'{item.subject}: not delivered: {error}'
            self.done.appendleft((datetime.now().strftime('%H:%M:%S'), line))
        logger.info('Local portal: %s', line)
        raise web.HTTPSeeOther('/')

    def _check_origin(self, request: web.Request) -> None:
        """A form posted from another site must not act: only the portal's own page may."""
        origin = request.headers.get('Origin')
        if origin is not None and origin != self.url.rstrip('/'):
            raise web.HTTPForbidden(text="Only the local portal's own page may do this.")

    async def frame(self, request: web.Request) -> web.Response:
        """One page of an installation in a portal frame."""
        installation = self.emulator.objects.installation(request.match_info['installation_id'])
        pages = ui_pages(self.emulator.web.ui_modules)
        number = int(request.match_info['number'])
        if installation is None or number >= len(pages):
            raise web.HTTPNotFound(text='No such installation or page.')
        label, url = pages[number]
        return web.Response(content_type='text/html', text=frame_page(
            portal_url=self.url, installation=installation, label=label,
            page_url=await self.page_url(installation['id'], url),
        ))
