"""The MongoDB documents of events, counts and installations, and the filters that read
them, shared by the driver and the Data API backends.

Both backends send the same filters and updates, so a collection written by one can be read
by the other: one document per idempotency key, the request kept whole under `request`.
"""
import json
import re
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Tuple

import bson
from bson.errors import InvalidDocument

from connect_mongodb_example.errors import InvalidRequest
from connect_mongodb_example.event_record import STORED_FIELDS, EventRecord
from connect_mongodb_example.installation_record import InstallationRecord
from connect_mongodb_example.record_fields import COUNT, INCREMENT, JSON, LATEST, TIME, Stored
from connect_mongodb_example.storage.base import EventFilter, PageCursor

Sort = Tuple[Tuple[str, int], ...]
IndexSpec = Tuple[List[Tuple[str, int]], Dict[str, Any]]

#: The collections beside the events collection, named from it.
COUNTS_SUFFIX = '_counts'
INSTALLATIONS_SUFFIX = '_installations'
SCHEMA_SUFFIX = '_schema'
LONGEST_SUFFIX = max(len(suffix) for suffix in (COUNTS_SUFFIX, INSTALLATIONS_SUFFIX,
                                                SCHEMA_SUFFIX))

#: Set on an installation's event by the write that creates it, to the creating save's
#: token (an ObjectId, so it also tells when); removed once the event is counted. See
#: `mongo_counts` for why.
COUNTING = 'counting'

KEY_INDEX_NAME = 'connect_events_idempotency_key_uniq'
REQUEST_INDEX_NAME = 'connect_events_request_installation_idx'
RECEIVED_INDEX_NAME = 'connect_events_installation_received_idx'
STATUS_RECEIVED_INDEX_NAME = 'connect_events_installation_status_received_idx'
COUNTING_INDEX_NAME = 'connect_events_counting_idx'
RETENTION_INDEX_NAME = 'connect_events_received_idx'
#: The page order (see `PageCursor`): first received, then key, both descending.
NEWEST_FIRST: Sort = (('received_at', -1), ('key', -1))
OLDEST_FIRST: Sort = (('received_at', 1), ('key', 1))
Keys = List[Tuple[str, int]]
#: One installation's events in page order, all of them or of one status: the pages, their
#: cursors, and the purges. Reads hint these keys (not names: an index on the same keys
#: under another name serves as well).
RECEIVED_INDEX: Keys = [('installation_id', 1), *NEWEST_FIRST]
STATUS_RECEIVED_INDEX: Keys = [('installation_id', 1), ('status', 1), *NEWEST_FIRST]
#: Only the events whose count is under way (a few at any time): the repairs find the ones
#: a stopped process left.
COUNTING_INDEX: Keys = [(COUNTING, 1)]
#: (keys, options) of the events collection's indexes, as the driver backend creates them.
#: The key index is sparse so that it can be added to a collection already holding
#: documents without `key` (the tutorial's).
EVENT_INDEXES: Tuple[IndexSpec, ...] = (
    ([('key', 1)], {'name': KEY_INDEX_NAME, 'unique': True, 'sparse': True}),
    ([('request_id', 1), ('installation_id', 1)], {'name': REQUEST_INDEX_NAME}),
    (RECEIVED_INDEX, {'name': RECEIVED_INDEX_NAME}),
    (STATUS_RECEIVED_INDEX, {'name': STATUS_RECEIVED_INDEX_NAME}),
    (COUNTING_INDEX, {'name': COUNTING_INDEX_NAME, 'sparse': True}),
)
#: Created on the first retention delete across installations, so that deployments that
#: keep events forever do not pay for it on every insert.
RETENTION_INDEX: IndexSpec = ([('received_at', 1)], {'name': RETENTION_INDEX_NAME})
#: The read indexes of the first version, on `last_received_at`: every redelivery moved
#: their entries, and pages no longer sort by it.
RETIRED_INDEX_NAMES = ('connect_events_installation_recent_idx',
                       'connect_events_installation_status_recent_idx')
#: Which index serves a page (by whether it filters a status) when no request is asked for.
PAGE_INDEX = {False: RECEIVED_INDEX, True: STATUS_RECEIVED_INDEX}

#: What a page reads of each document: every stored field but the request document.
LISTED_PROJECTION = {'_id': False, COUNTING: False,
                     **{name: False for name, stored in STORED_FIELDS if stored.kind == JSON}}
#: What an export reads: every stored field.
FULL_PROJECTION = {'_id': False, COUNTING: False}
#: Oldest first; `_id` breaks ties between records received in the same millisecond.
SORT: Sort = (('received_at', 1), ('_id', 1))

#: MongoDB's limit for one document (BSON), the Atlas Data API's and FerretDB's too.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
#: The largest skip or limit BSON carries (a signed 64-bit integer).
LARGEST_NUMBER = 2 ** 63 - 1
_FRACTION = re.compile(r'\.(\d+)')


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
    """The document the upsert creates, `_id` (and the counting marker of an installation's
    event) included, so that its size is the largest stored."""
    marker = bson.ObjectId() if record.installation_id is not None else None
    update = upsert_update(record, marker)
    return {'_id': bson.ObjectId(), **update['$setOnInsert'], **update['$max'],
            **dict.fromkeys(update['$inc'], 1)}


def key_filter(record: EventRecord) -> Dict[str, Any]:
    return {'key': record.key}


def upsert_update(record: EventRecord, marker: Optional[bson.ObjectId] = None) -> Dict[str, Any]:
    """The update that stores a new record or counts one more delivery of a stored one; a
    new record gets `marker` as its counting marker when one is given."""
    update: Dict[str, Dict[str, Any]] = {'$setOnInsert': {}, '$inc': {}, '$max': {}}
    for name, stored in STORED_FIELDS:
        if stored.on_redelivery == INCREMENT:
            # $inc on a missing field starts it at 0, so a new document gets 1.
            update['$inc'][name] = 1
        elif stored.on_redelivery == LATEST:
            # The later of the two: concurrent deliveries are applied in any order.
            update['$max'][name] = _to_mongo(stored, getattr(record, name))
        else:
            update['$setOnInsert'][name] = _to_mongo(stored, getattr(record, name))
    if marker is not None:
        update['$setOnInsert'][COUNTING] = marker
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


def page_filter(
    where: EventFilter, after: Optional[PageCursor], before: Optional[PageCursor],
) -> Dict[str, Any]:
    """The events of `where` after (older than) or before (newer than) a cursor's place.

    The range on `received_at` bounds the index scan; the `$or` only tells apart the events
    received in the cursor's own millisecond, by key.
    """
    query = events_filter(where)
    cursor, older = (after, True) if after is not None else (before, False)
    if cursor is None:
        return query
    moment = _utc(cursor.received_at)
    # BSON dates hold milliseconds: a cursor from elsewhere with a finer time falls between
    # two stored times, and no key is needed to place it.
    floor = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if floor != moment:
        query['received_at'] = {'$lte': floor} if older else {'$gt': floor}
        return query
    strictly, at_most = ('$lt', '$lte') if older else ('$gt', '$gte')
    query['received_at'] = {at_most: moment}
    query['$or'] = [{'received_at': {strictly: moment}}, {'key': {strictly: cursor.key}}]
    return query


def holdable(*texts: Optional[str]) -> bool:
    """Whether BSON and JSON can carry every text (a lone surrogate is in no stored event:
    a filter holding one matches nothing)."""
    try:
        for text in texts:
            if text is not None:
                text.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


def check_window(limit: int, offset: int) -> None:
    """A page's limit and offset as a caller may send them: what BSON cannot carry is a bad
    request, not a server error."""
    for name, value in (('limit', limit), ('offset', offset)):
        if not isinstance(value, int) or isinstance(value, bool) or not (
                0 <= value <= LARGEST_NUMBER):
            raise InvalidRequest(f'{name} must be a whole number from 0 to {LARGEST_NUMBER}, '
                                 f'got {value!r}')


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


# -- counts ---------------------------------------------------------------------------------

def count_id(installation_id: str, status: str) -> str:
    """The `_id` of an installation's count of one status: the pair as compact JSON, so that
    every count of one installation shares a prefix no other installation's has (the
    string's closing quote is never escaped), and one `_id` range reads them all."""
    return json.dumps([installation_id, status], ensure_ascii=False, separators=(',', ':'))


def installation_counts(installation_id: str) -> Dict[str, Any]:
    """The filter of every count of the installation, a range of the `_id` index."""
    prefix = json.dumps([installation_id], ensure_ascii=False, separators=(',', ':'))[:-1] + ','
    return {'_id': {'$gte': prefix, '$lt': prefix[:-1] + chr(ord(',') + 1)}}


def count_document(installation_id: str, status: str, events: int) -> Dict[str, Any]:
    return {'_id': count_id(installation_id, status), 'installation_id': installation_id,
            'status': status, 'events': events, 'version': 1}


# -- installations --------------------------------------------------------------------------

def installation_document(installation: InstallationRecord) -> Dict[str, Any]:
    """The stored fields of an installation record but its id, which is the `_id`."""
    return {
        'status': installation.status,
        'changed_at': _utc(installation.changed_at),
        'account_id': installation.account_id,
        'environment_id': installation.environment_id,
        'purge_after': _utc(installation.purge_after) if installation.purge_after else None,
        'purged_at': _utc(installation.purged_at) if installation.purged_at else None,
    }


def to_installation(document: Mapping[str, Any]) -> InstallationRecord:
    def moment(name: str) -> Optional[datetime]:
        value = document.get(name)
        return None if value is None else parse_moment(value)

    return InstallationRecord(
        installation_id=document['_id'],
        status=document['status'],
        changed_at=parse_moment(document['changed_at']),
        account_id=document.get('account_id'),
        environment_id=document.get('environment_id'),
        purge_after=moment('purge_after'),
        purged_at=moment('purged_at'),
    )


def same_marker(value: Any, marker: bson.ObjectId) -> bool:
    """Whether a document read back carries `marker`: an ObjectId, or its hex string in a
    plain-JSON reply (FerretDB's Data API answers so)."""
    return value == marker or (isinstance(value, str) and value == str(marker))


# -- times ----------------------------------------------------------------------------------

def marker_at(moment: datetime) -> bson.ObjectId:
    """The smallest ObjectId made at `moment`: markers below it were made before."""
    return bson.ObjectId.from_datetime(_utc(moment))


def _to_mongo(stored: Stored, value: Any) -> Any:
    return _utc(value) if stored.kind == TIME and value is not None else value


def _from_mongo(stored: Stored, value: Any) -> Any:
    if value is None:
        return None
    if stored.kind == TIME:
        return parse_moment(value)
    if stored.kind == COUNT:
        return int(value)
    if stored.kind == JSON:
        return dict(value)
    return value


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        # A naive time is UTC, as BSON reads it.
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def parse_moment(value: Any) -> datetime:
    """BSON dates come back as datetimes; a plain-JSON Data API reply sends ISO strings,
    with as many fraction digits as the time needs (Go's RFC 3339), which Python before
    3.11 reads only as 3 or 6."""
    if isinstance(value, str):
        text = _FRACTION.sub(lambda match: '.' + match[1].ljust(6, '0')[:6],
                             value.replace('Z', '+00:00'))
        value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        # Without tz_aware the driver returns naive datetimes that are UTC.
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
