"""Seeded history: events stored straight into the storage before the runner starts, as if
received long ago, so that the data lifecycle job has old events to delete (the runner
stores every event as received when it comes, so none of its events can be old).

The purchase-request files of the events folder's `history/` subfolder (the same format as
the event files; none: no history) are each stored once, through the extension's own
storage interface, received HISTORY_AGE_DAYS ago.
"""
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, List, Mapping

from connect_mongodb_example.errors import ConfigurationError, InvalidRequest, within
from connect_mongodb_example.event_record import build_record
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import close_all, stores_for
from localdev.connect_emulator.events import Event, EventFileError, load_requests
from localdev.readback import READ_ERRORS

HISTORY_FOLDER = 'history'
HISTORY_AGE_DAYS = 400


def history_events(events_directory: Path) -> List[Event]:
    """The history files of the events folder, each one the extension can store."""
    events = load_requests(Path(events_directory) / HISTORY_FOLDER)
    for event in events:
        try:
            build_record(event.request, PURCHASE_REQUEST, installation=event.installation)
        except InvalidRequest as error:
            raise EventFileError(event.source, f'cannot be seeded: {error}') from None
    return events


async def seed_history(events: List[Event], variables: Mapping[str, str]) -> Dict[str, str]:
    """Store `events` as received HISTORY_AGE_DAYS ago in every selected backend; the
    backends that refused, with why (their rows then say it)."""
    if not events:
        return {}
    received_at = datetime.now(timezone.utc) - timedelta(days=HISTORY_AGE_DAYS)
    settings = load_settings(variables)
    problems: Dict[str, str] = {}
    try:
        for store in stores_for(settings):
            try:
                for event in events:
                    record = build_record(event.request, PURCHASE_REQUEST,
                                          installation=event.installation,
                                          received_at=received_at)
                    await within(store.save(record), settings.storage_timeout,
                                 store.describe())
            except (*READ_ERRORS, ConfigurationError) as error:
                # Its rows say so, as the rows of the events the extension could not store.
                problems[store.describe()] = f'cannot seed the history: {error}'
    finally:
        await close_all()
    return problems
