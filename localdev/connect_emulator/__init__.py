"""An offline stand-in for the Connect endpoints the extension runner talks to.

One TLS server on 127.0.0.1 serves the EaaS websocket (setup, tasks, results) and the
few REST calls the runner makes while processing a task. Nothing here knows about the
storage extension: any events extension can be driven with it.
"""
from localdev.connect_emulator.events import (
    Event,
    EventFileError,
    InstallationChange,
    Item,
    ScheduleRun,
    load_events,
    load_items,
)
from localdev.connect_emulator.protocol import TaskResult
from localdev.connect_emulator.server import ConnectEmulator, Delivery

__all__ = [
    'ConnectEmulator',
    'Delivery',
    'Event',
    'EventFileError',
    'InstallationChange',
    'Item',
    'ScheduleRun',
    'TaskResult',
    'load_events',
    'load_items',
]
