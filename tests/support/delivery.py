"""Delivering events like the runner does, and seeing which stores the process holds."""
import asyncio
from typing import Any, List, Mapping, Optional

from connect.eaas.core.responses import BackgroundResponse

from connect_mongodb_example.extension import StatefulEventsApplication
from connect_mongodb_example.storage import registry
from connect_mongodb_example.storage.base import EventStore


async def deliver(
    request: Any,
    config: Mapping[str, Any],
    logger: Any,
    installation: Optional[Mapping[str, Any]] = None,
) -> BackgroundResponse:
    """One task as the runner runs it: a new application instance, then the event handler."""
    app = StatefulEventsApplication(
        client=None, logger=logger, config=dict(config), installation=installation,
    )
    # A generous bound: a hang is a failure, not a stuck suite. Not a timing assertion.
    return await asyncio.wait_for(app.handle_asset_purchase_request_processing(request), 60)


def open_stores() -> List[EventStore]:
    """The stores the process holds now (created by tasks, not yet closed)."""
    return list(registry._stores.values())
