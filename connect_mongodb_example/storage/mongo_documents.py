"""The MongoDB document of an event, shared by the driver and the Data API backends.

Both backends send the same filter and update, so a collection written by one can be read
by the other: one document per idempotency key, the request kept whole under `request`.
"""
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Tuple

import bson
from bson.errors import InvalidDocument

from connect_mongodb_example.errors import InvalidRequest
from connect_mongodb_example.event_record import STORED_FIELDS, EventRecord
from connect_mongodb_example.record_fields import COUNT, INCREMENT, JSON, LATEST, TIME, Stored
from connect_mongodb_example.storage.base import EventFilter

KEY_INDEX_NAME = 'connect_events_idempotency_key_uniq'
REQUEST_INDEX_NAME = 'connect_events_request_installation_idx'
RECENT_INDEX_NAME = 'connect_events_installation_recent_idx'
STATUS_RECENT_INDEX_NAME = 'connect_events_installation_status_recent_idx'
#: Newest first, as pages list events; `key` orders events received in the same millisecond.
NEWEST_FIRST: Tuple[Tuple[str, int], ...] = (('last_received_at', -1), ('key', 1))
#: (keys, options) of the indexes the driver backend creates. The key index is sparse so that
#: it can be added to a collection already holding documents without `key` (the tutorial's).
INDEXES: Tuple[Tuple[List[Tuple[str, int]], Dict[str, Any]], ...] = (
    ([('key', 1)], {'name': KEY_INDEX_NAME, 'unique': True, 'sparse': True}),
    ([('request_id', 1), ('installation_id', 1)], {'name': REQUEST_INDEX_NAME}),
    # One installation's events newest first, all of them or of one status: the pages.
    ([('installation_id', 1), *NEWEST_FIRST], {'name': RECENT_INDEX_NAME}),
    ([('installation_id', 1), ('status', 1), *NEWEST_FIRST], {'name': STATUS_RECENT_INDEX_NAME}),
)
#: What a page reads of each document: every stored field but the documents, which it does
#: not show.
LISTED_PROJECTION = {'_id': False, **{name: False for name, stored in STORED_FIELDS
                                     if stored.kind == JSON}}
#: Oldest first; `_id` breaks ties between records received in the same millisecond.
SORT: Tuple[Tuple[str, int], ...] = (('received_at', 1), ('_id', 1))

#: MongoDB's limit for one document (BSON), the Atlas Data API's and FerretDB's too.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def check_size(record: EventRecord, where: str) -> None:
    """Refuse, before anything is written, a record that MongoDB could never store: over the
    document limit, or with what BSON cannot encode (a NUL in a key, a lone surrogate)."""
    try:
        size = len(bson.encode(stored_document(record)))
    except (InvalidDocument, UnicodeEncodeError) as error:
        raise InvalidRequest(
            f'{where}: request {record.request_id} cannot be a MongoDB document: {error}',
        ) from None
    if size > MAX_DOCUMENT_BYTES:
        raise InvalidRequest(
            f'{where}: request {record.request_id} makes a {size}-byte document, over the '
            f'{MAX_DOCUMENT_BYTES}-byte MongoDB limit',
        )


def stored_document(record: EventRecord) -> Dict[str, Any]:
    """The document the upsert creates, `_id` included, so that its size is the stored one."""
    update = upsert_update(record)
    return {'_id': bson.ObjectId(), **update['$setOnInsert'], **update['$set'],
            **dict.fromkeys(update['$inc'], 1)}


def key_filter(record: EventRecord) -> Dict[str, Any]:
    return {'key': record.key}


def upsert_update(record: EventRecord) -> Dict[str, Any]:
    """The update that stores a new record or counts one more delivery of a stored one."""
    update: Dict[str, Dict[str, Any]] = {'$setOnInsert': {}, '$inc': {}, '$set': {}}
    for name, stored in STORED_FIELDS:
        if stored.on_redelivery == INCREMENT:
            # $inc on a missing field starts it at 0, so a new document gets 1.
            update['$inc'][name] = 1
        elif stored.on_redelivery == LATEST:
            update['$set'][name] = _to_mongo(stored, getattr(record, name))
        else:
            update['$setOnInsert'][name] = _to_mongo(stored, getattr(record, name))
    return update


def request_filter(request_id: str, installation_id: Optional[str] = None) -> Dict[str, Any]:
    query: Dict[str, Any] = {'request_id': request_id}
    if installation_id is not None:
        query['installation_id'] = installation_id
    return query


def events_filter(where: EventFilter) -> Dict[str, Any]:
    query: Dict[str, Any] = {'installation_id': where.installation_id}
    if where.status is not None:
        query['status'] = where.status
    if where.request_id is not None:
        query['request_id'] = where.request_id
    return query


def to_record(document: Mapping[str, Any]) -> EventRecord:
    """The record a stored document holds (`_id` and unknown fields are ignored; optional
    fields a document lacks, e.g. one added to the record since it was written, are None)."""
    values: Dict[str, Any] = {}
    for name, stored in STORED_FIELDS:
        if name in document:
            values[name] = _from_mongo(stored, document[name])
        elif stored.kind == JSON:
            values[name] = {}
        elif stored.nullable:
            values[name] = None
    return EventRecord(**values)


def _to_mongo(stored: Stored, value: Any) -> Any:
    return _utc(value) if stored.kind == TIME and value is not None else value


def _from_mongo(stored: Stored, value: Any) -> Any:
    if value is None:
        return None
    if stored.kind == TIME:
        return _parse_moment(value)
    if stored.kind == COUNT:
        return int(value)
    if stored.kind == JSON:
        return dict(value)
    return value


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def _parse_moment(value: Any) -> datetime:
    """BSON dates come back as datetimes; a plain-JSON Data API reply sends ISO strings."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace('Z', '+00:00'))
    if value.tzinfo is None:
        # Without tz_aware the driver returns naive datetimes that are UTC.
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
