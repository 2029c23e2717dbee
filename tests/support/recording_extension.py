"""An events application that records what the runner hands it, for the emulation's
end-to-end tests of installation status changes and schedules.

It declares the installation handler and the data lifecycle job under the names the
extension gives them (`handle_installation_status_change`, `run_data_lifecycle`), answers
`done`, and appends one JSON line per call to the file RECORDING_FILE (an environment
variable of the runner) names: the method, its argument, and the installation the runner
fetched for the task. The runner loads it through `runner_environment`.
"""
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from connect.eaas.core.decorators import event, schedulable, variables
from connect.eaas.core.enums import ResultType
from connect.eaas.core.extension import EventsApplicationBase
from connect.eaas.core.responses import BackgroundResponse, ScheduledExecutionResponse

from connect_mongodb_example.extension import StatefulEventsApplication
from connect_mongodb_example.settings import variable_declarations
from localdev.noop_extension import entry_point_path

RECORDING_FILE = 'RECORDING_FILE'
INSTALLATION_STATUSES = ['installed', 'uninstalled']


@variables(variable_declarations())
class RecordingEventsApplication(EventsApplicationBase):

    @classmethod
    def get_descriptor(cls) -> Dict[str, Any]:
        return StatefulEventsApplication.get_descriptor()

    @event('installation_status_change', statuses=INSTALLATION_STATUSES)
    async def handle_installation_status_change(
        self, request: Dict[str, Any],
    ) -> BackgroundResponse:
        self._record('handle_installation_status_change', request)
        return BackgroundResponse.done()

    @schedulable('Data lifecycle', 'Records the schedule it runs with.')
    async def run_data_lifecycle(self, schedule: Dict[str, Any]) -> ScheduledExecutionResponse:
        self._record('run_data_lifecycle', schedule)
        # done() drops its output; the runner reports the output of any result.
        return ScheduledExecutionResponse(
            ResultType.SUCCESS, output=f'recorded schedule {schedule["id"]}',
        )

    def _record(self, method: str, argument: Dict[str, Any]) -> None:
        line = {'method': method, 'argument': argument, 'installation': self.installation}
        with Path(os.environ[RECORDING_FILE]).open('a', encoding='utf-8') as recording:
            recording.write(json.dumps(line) + '\n')


def runner_environment(directory: Path, recording: Path) -> Dict[str, str]:
    """What makes a runner load this application and record into `recording`."""
    path = entry_point_path(str(directory / 'recording-entry-point'), RecordingEventsApplication)
    return {
        'PYTHONPATH': os.pathsep.join(filter(None, [path, os.environ.get('PYTHONPATH')])),
        RECORDING_FILE: str(recording),
    }


def recorded(recording: Path, method: Optional[str] = None) -> List[Dict[str, Any]]:
    """The calls recorded so far (of `method` only, when given), in order."""
    if not recording.exists():
        return []
    calls = [json.loads(line) for line in recording.read_text(encoding='utf-8').splitlines()]
    return [call for call in calls if method is None or call['method'] == method]
