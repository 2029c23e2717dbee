"""A no-op events extension, for the scale-out benchmark: the runner's own cost per event.

It subscribes to the same events and statuses with the same variables and descriptor as the
extension, answers every task done, and stores nothing. The benchmark runs it through the
same runner and emulation (see `entry_point_path`), so extension/no-op is the share of the
extension in what an event costs end to end.
"""
from pathlib import Path
from typing import Any, Dict

from connect.eaas.core.decorators import event, variables
from connect.eaas.core.extension import EventsApplicationBase
from connect.eaas.core.responses import BackgroundResponse

from connect_mongodb_example.extension import PURCHASE_REQUEST, StatefulEventsApplication
from connect_mongodb_example.installation_events import INSTALLATION_STATUS_CHANGE
from connect_mongodb_example.settings import variable_declarations

#: What the runner loads: the first `eventsapp` entry point on its path.
ENTRY_POINT_GROUP = 'connect.eaas.ext'
DISTRIBUTION = 'localdev_noop_extension-0.0.0.dist-info'


@variables(variable_declarations())
class NoopEventsApplication(EventsApplicationBase):

    @classmethod
    def get_descriptor(cls) -> Dict[str, Any]:
        return StatefulEventsApplication.get_descriptor()

    @event(PURCHASE_REQUEST.name, statuses=list(PURCHASE_REQUEST.statuses))
    async def handle_asset_purchase_request_processing(
        self, request: Dict[str, Any],
    ) -> BackgroundResponse:
        return BackgroundResponse.done()

    @event(INSTALLATION_STATUS_CHANGE.name, statuses=list(INSTALLATION_STATUS_CHANGE.statuses))
    async def handle_installation_status_change(
        self, request: Dict[str, Any],
    ) -> BackgroundResponse:
        return BackgroundResponse.done()


def entry_point_path(directory: str, application: type = NoopEventsApplication) -> str:
    """A folder holding a throwaway distribution whose `eventsapp` entry point is the no-op
    extension (or `application`); put it first on the runner's PYTHONPATH and the runner
    loads it instead of the installed extension (entry points are found in sys.path order).
    `application` must be importable from the runner's working directory."""
    info = Path(directory) / DISTRIBUTION
    info.mkdir(parents=True, exist_ok=True)
    (info / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: localdev-noop-extension\nVersion: 0.0.0\n',
        encoding='utf-8')
    (info / 'entry_points.txt').write_text(
        f'[{ENTRY_POINT_GROUP}]\n'
        f'eventsapp = {application.__module__}:{application.__qualname__}\n',
        encoding='utf-8')
    return str(directory)

