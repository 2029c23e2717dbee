"""The Connect events application: every purchase-request event is persisted."""
import asyncio
import logging
from typing import Any, Dict, Mapping

from connect.eaas.core.decorators import event, variables
from connect.eaas.core.extension import EventsApplicationBase
from connect.eaas.core.responses import BackgroundResponse

from connect_mongodb_example.errors import ConfigurationError
from connect_mongodb_example.recorder import record_event, stores_for
from connect_mongodb_example.records import PURCHASE_REQUEST_EVENT, PURCHASE_REQUEST_STATUSES
from connect_mongodb_example.settings import load_settings, variable_declarations
from connect_mongodb_example.storage.registry import close_all


@variables(variable_declarations())
class StatefulEventsApplication(EventsApplicationBase):
    """A multi-account events application; storage clients are shared by the whole process,
    since the runner builds a new instance of this class for every task."""

    @classmethod
    async def on_startup(cls, logger: logging.LoggerAdapter, config: Mapping[str, Any]) -> None:
        """Check storage early so that problems show in the logs before the first event."""
        try:
            settings = load_settings(config)
        except ConfigurationError as error:
            logger.error('Configuration problem: %s', error)
            return
        for store in stores_for(settings):
            try:
                await asyncio.wait_for(store.ping(), settings.storage_timeout)
                logger.info('Storage ready: %s', store.describe())
            except ConfigurationError as error:
                logger.error('Configuration problem: %s', error)
            except Exception as error:  # noqa: BLE001 - events will be rescheduled until it is up
                logger.warning('Storage %s not reachable yet: %s', store.describe(), error)

    @classmethod
    async def on_shutdown(cls, logger: logging.LoggerAdapter, config: Mapping[str, Any]) -> None:
        await close_all()
        logger.info('Storage connections closed')

    @event(PURCHASE_REQUEST_EVENT, statuses=list(PURCHASE_REQUEST_STATUSES))
    async def handle_asset_purchase_request_processing(
        self, request: Dict[str, Any],
    ) -> BackgroundResponse:
        return await record_event(
            request,
            config=self.config,
            logger=self.logger,
            installation=self.installation,
        )
