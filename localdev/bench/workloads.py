"""The events the benchmark sends, and the handler path every backend is measured through.

Events are copies of demo/events/01-*.json (a realistic 3.5 KB purchase request with its
installation), each with its own request id, so every measured event is a new record unless
a workload asks for a bounded set of ids (then the later ones are redeliveries).
"""
import json
import logging
from typing import Any, Dict, Mapping, Optional, Tuple

from connect.eaas.core.enums import ResultType

from connect_mongodb_example.event_record import idempotency_key
from connect_mongodb_example.extension import StatefulEventsApplication
from localdev.offline import REPO_ROOT

TEMPLATE_FILE = REPO_ROOT / 'demo' / 'events' / '01-PR-5852-1608-1176-001-pending.json'
# The handler logs one INFO line per event; the benchmark measures storage, not log output.
QUIET_LOGGER = logging.LoggerAdapter(logging.getLogger('bench.extension'), {})
QUIET_LOGGER.logger.setLevel(logging.WARNING)


class EventFactory:
    """Purchase requests numbered n: request id PR-<tag>-<n>; with `distinct`, n wraps."""

    def __init__(self, tag: int, distinct: Optional[int] = None):
        document = json.loads(TEMPLATE_FILE.read_text(encoding='utf-8'))
        self._template = json.dumps(document['request'])
        self.installation: Dict[str, Any] = document['installation']
        self.tag = tag
        self.distinct = distinct

    def request(self, n: int) -> Dict[str, Any]:
        if self.distinct:
            n %= self.distinct
        request = json.loads(self._template)  # a deep copy, as each delivery is a new object
        request['id'] = f'PR-{self.tag:04d}-{n // 10000:04d}-{n % 10000:04d}-001'
        return request

    def key_fields(self, n: int) -> Tuple[str, Dict[str, Any]]:
        """The idempotency key the extension derives, and the request."""
        request = self.request(n)
        key = idempotency_key(request['id'], request['status'], request['updated'],
                              self.installation['id'])
        return key, request


class HandlerWork:
    """One task as the runner runs it: a new application instance per event, the handler,
    and the process-wide store behind it."""

    def __init__(self, config: Mapping[str, str], events: EventFactory):
        self.config = dict(config)
        self.events = events

    async def __call__(self, n: int) -> bool:
        app = StatefulEventsApplication(
            client=None, logger=QUIET_LOGGER, config=self.config,
            installation=self.events.installation,
        )
        response = await app.handle_asset_purchase_request_processing(self.events.request(n))
        return response.status == ResultType.SUCCESS
