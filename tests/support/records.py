"""Records as the purchase-request handler builds them, and their fields at a glance."""
from dataclasses import fields
from typing import Any, Dict

from connect_mongodb_example.event_record import EventRecord, build_record
from connect_mongodb_example.extension import PURCHASE_REQUEST

#: Fields `summary` leaves out: the request document and the receive times.
NOT_SUMMARISED = frozenset({'request', 'request_json', 'received_at', 'last_received_at'})


def purchase_record(request: Any, **options: Any) -> EventRecord:
    return build_record(request, PURCHASE_REQUEST, **options)


def summary(record: EventRecord) -> Dict[str, Any]:
    """Every field but the request document and the times, to compare records at a glance."""
    return {field.name: getattr(record, field.name) for field in fields(record)
            if field.name not in NOT_SUMMARISED}
