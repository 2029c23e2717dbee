"""What an installation's status change becomes: the `InstallationRecord` every store keeps,
with the uninstall policy applied.

Connect sends `installation_status_change` when an account installs or uninstalls the
extension; the runner passes the installation object as it is then::

    {"id": "EIN-...", "status": "uninstalled", "owner": {"id": "VA-...", "name": "..."},
     "environment": {"id": "ENV-..."}, "settings": {...},
     "events": {"installed": {"at": "2026-01-05T10:00:00+00:00", "by": {...}},
                "uninstalled": {"at": "2026-03-01T09:30:00+00:00", "by": {...}},
                "updated": {"at": "2026-03-01T09:30:00+00:00"}}}
"""
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Optional

from connect_mongodb_example.errors import InvalidRequest
from connect_mongodb_example.event_record import STORED_FIELDS, EventType
from connect_mongodb_example.installation_record import (
    INSTALLATION_STATUSES,
    UNINSTALLED,
    InstallationRecord,
)
from connect_mongodb_example.settings import Settings

INSTALLATION_STATUS_CHANGE = EventType('installation_status_change', INSTALLATION_STATUSES)
PURGE = 'purge'
# The ids an installation record keeps are those its events carry: the same longest text.
_ID_LENGTH = {name: stored.length for name, stored in STORED_FIELDS}['installation_id']


def installation_record(installation: object) -> InstallationRecord:
    """The record of an installation object as Connect sends it, with nothing due yet (see
    `with_policy`); `InvalidRequest` names what is missing or malformed."""
    if not isinstance(installation, dict):
        raise InvalidRequest(
            f'the installation must be a JSON object, got {type(installation).__name__}')
    installation_id = _id(installation.get('id'), 'the installation', "'id'")
    where = f'installation {installation_id}'
    status = installation.get('status')
    if status not in INSTALLATION_STATUSES:
        raise InvalidRequest(
            f'{where} has status {status!r}, which this extension does not handle (expected '
            f'one of {", ".join(INSTALLATION_STATUSES)})')
    return InstallationRecord(
        installation_id=installation_id,
        status=status,
        changed_at=_changed_at(installation, status, where),
        account_id=_optional_id(installation, 'owner', where),
        environment_id=_optional_id(installation, 'environment', where),
    )


def with_policy(record: InstallationRecord, settings: Settings) -> InstallationRecord:
    """The record with the purge the settings call for: an uninstall under
    `ON_UNINSTALL=purge` is purged `PURGE_GRACE_DAYS` after it happened; any other change
    (an install, a reinstall, an uninstall under `keep`) plans none, which cancels one
    planned before, since the latest change is the one every store keeps."""
    purge_after = None
    if record.status == UNINSTALLED and settings.on_uninstall == PURGE:
        purge_after = record.changed_at + timedelta(days=settings.purge_grace_days)
    return replace(record, purge_after=purge_after, purged_at=None)


def _changed_at(installation: Mapping[str, Any], status: str, where: str) -> datetime:
    """When the installation reached `status` by Connect's clock: `events.<status>.at`, else
    `events.updated.at`. The time, not the delivery, orders the changes, so that redelivered
    or reordered tasks settle on the latest."""
    events = installation.get('events')
    for name in (status, 'updated'):
        event = events.get(name) if isinstance(events, dict) else None
        at = event.get('at') if isinstance(event, dict) else None
        if at is not None:
            return _moment(at, f'{where}: events.{name}.at')
    raise InvalidRequest(
        f'{where} has no time for its status: events.{status}.at or events.updated.at is '
        'needed to order its changes')


def _moment(value: object, where: str) -> datetime:
    """An ISO 8601 time in UTC, to the millisecond: the precision of MongoDB's dates, so that
    every backend orders the same changes alike. One without a zone is taken as UTC, as
    Connect means it."""
    try:
        if not isinstance(value, str):
            raise TypeError
        # Python 3.9 and 3.10 do not read a trailing Z.
        moment = datetime.fromisoformat(value.strip().replace('Z', '+00:00'))
    except (TypeError, ValueError):
        raise InvalidRequest(f'{where} is not an ISO 8601 time: {value!r}') from None
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _id(value: object, where: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f'{where} has no {name} (a non-empty string is required)')
    value = value.strip()
    if len(value) > _ID_LENGTH:
        raise InvalidRequest(f'{where}: {name} is longer than {_ID_LENGTH} characters')
    return value


def _optional_id(installation: Mapping[str, Any], name: str, where: str) -> Optional[str]:
    """`<name>.id`, or None when Connect leaves it out."""
    value = installation.get(name)
    if not isinstance(value, dict) or value.get('id') is None:
        return None
    return _id(value['id'], where, f"'{name}.id'")
