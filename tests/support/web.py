"""The web application through eaas-core's WebAppTestClient with a backend behind it: calls
made as an installation's user, and events stored as the events application stores them."""
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import urljoin

import pytest
from connect.eaas.core.testing.testclient import WebAppTestClient

from connect_mongodb_example.event_record import EventRecord
from connect_mongodb_example.installation_record import InstallationRecord
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.base import EventFilter
from connect_mongodb_example.storage.registry import close_all, stores_for
from connect_mongodb_example.webapp import EventsWebApplication
from tests.support.backends import backend_config, backend_targets
from tests.support.records import purchase_record
from tests.support.requests import purchase_request

MINE = 'EIN-1111-1111-1111'
THEIRS = 'EIN-2222-2222-2222'
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
LINK = re.compile(r'<([^>]*)>; rel="(\w+)"')


def web_targets() -> List[Any]:
    """Every backend's targets (tests/support/backends.py), and the in-memory `fake` one."""
    return [*backend_targets(), pytest.param('fake', id='fake')]


class Web:
    """A WebAppTestClient with a backend behind it: `get` calls as an installation's user."""

    def __init__(self, client: WebAppTestClient, config: Dict[str, str]):
        self.client = client
        self.config = config

    def get(self, path: str, installation: Optional[str] = MINE, **kwargs: Any) -> Any:
        kwargs.setdefault('config', self.config)
        if installation is not None:
            kwargs['installation'] = {'id': installation}
        return self.client.get(path, **kwargs)

    def raw_get(self, path: str, headers: List[tuple]) -> Any:
        """A call with exactly these headers (the test client's own handling keeps one value
        per name and adds a context): as a forged call would come."""
        return super(WebAppTestClient, self.client).request('GET', path, headers=headers)

    def save(self, installation: Optional[str], request_id: str, status: str, seconds: float,
             updated: Optional[str] = None, **request: Any) -> EventRecord:
        """Store one event as the events application would (in the client's event loop,
        where the process-wide stores live)."""
        record = purchase_record(
            purchase_request(request_id, status=status, updated=updated or f'u{seconds}',
                             **request),
            installation={'id': installation, 'owner': {'id': 'VA-000-001'}}
            if installation else None,
            received_at=T0 + timedelta(seconds=seconds),
        )

        async def save() -> None:
            for store in stores_for(load_settings(self.config)):
                await store.save(record)

        self.client.portal.call(save)
        return record

    def save_installation(self, installation: InstallationRecord) -> None:
        async def save() -> None:
            for store in stores_for(load_settings(self.config)):
                await store.save_installation(installation)

        self.client.portal.call(save)

    def stored(self, installation: str) -> List[EventRecord]:
        """The installation's events as the first backend keeps them, documents included."""
        async def read() -> List[EventRecord]:
            [store, *_] = stores_for(load_settings(self.config))
            return await store.list_events(EventFilter(installation), limit=100_000, full=True)

        return self.client.portal.call(read)


def web_for(target: str, request: pytest.FixtureRequest) -> Iterator[Web]:
    if target == 'fake':
        request.getfixturevalue('fake_backend')
    with WebAppTestClient(EventsWebApplication) as client:
        # The backend's server (if any) runs in the client's event loop, like the stores.
        configured = client.portal.wrap_async_context_manager(backend_config(target, request))
        with configured as config:
            try:
                yield Web(client, config)
            finally:
                client.portal.call(close_all)


def links(response: Any) -> Dict[str, str]:
    """relation -> URL of the answer's Link header, resolved as a browser does."""
    return {relation: urljoin(str(response.url), url)
            for url, relation in LINK.findall(response.headers.get('link', ''))}
