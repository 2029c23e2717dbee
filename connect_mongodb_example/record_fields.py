"""How each field of `EventRecord` is stored, and what it is called, declared once beside
the field.

Every backend derives what it writes from these declarations: the SQL columns and their
lengths, the upsert's values and what a redelivery changes, the MongoDB document and
reading it back. The web application derives its labels from them. Adding a field to the
record is one line in `EventRecord` (plus, for SQL, one migration that adds its column).
"""
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

#: Kinds of stored values; each backend maps every kind to its own type.
TEXT, TIME, JSON, COUNT = 'text', 'time', 'json', 'count'
#: What a redelivery does to a stored field: nothing (the first write stays), take this
#: delivery's value if it is later than the stored one (deliveries of one event may be
#: written in any order), or add one.
KEEP, LATEST, INCREMENT = 'keep', 'latest', 'increment'
#: Where `build_record` takes a value from: (request, installation) -> value.
Source = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]

_STORED = 'stored'
_LABEL = 'label'


@dataclass(frozen=True)
class Stored:
    """How one field is stored."""

    kind: str
    #: Longest text: the SQL column length, checked before any backend writes.
    length: Optional[int] = None
    nullable: bool = False
    on_redelivery: str = KEEP
    #: Set for fields `build_record` fills by itself from the request or the installation.
    source: Optional[Source] = None


def text(length: int, *, source: Optional[Source] = None, label: Optional[str] = None) -> Any:
    """Text of at most `length` characters; taken from `source` (None when absent) if given,
    otherwise `build_record` sets it."""
    return field(metadata=_declared(Stored(TEXT, length, nullable=source is not None,
                                           source=source), label))


def moment(*, latest: bool = False, label: Optional[str] = None) -> Any:
    """A UTC time; `latest=True`: each delivery sets it (left None, it starts at
    `received_at`)."""
    if latest:
        return field(default=None, metadata=_declared(
            Stored(TIME, nullable=True, on_redelivery=LATEST), label))
    return field(metadata=_declared(Stored(TIME), label))


def document(*, label: Optional[str] = None) -> Any:
    """A JSON object, kept whole (empty unless given)."""
    return field(default_factory=dict, repr=False, metadata=_declared(Stored(JSON), label))


def counter(*, label: Optional[str] = None) -> Any:
    """Starts at 1; each redelivery adds one."""
    return field(default=1, metadata=_declared(Stored(COUNT, on_redelivery=INCREMENT), label))


def from_request(*path: str) -> Source:
    """The value at `path` in the request, e.g. ('asset', 'product', 'id')."""
    return lambda request, installation: _value_at(request, path)


def from_installation(*path: str) -> Source:
    """The value at `path` in the installation, e.g. ('owner', 'id')."""
    return lambda request, installation: _value_at(installation, path)


def stored_fields(record_class: type) -> Tuple[Tuple[str, Stored], ...]:
    """(name, how it is stored) of every stored field of the class, in declaration order."""
    return tuple((item.name, item.metadata[_STORED]) for item in fields(record_class)
                 if _STORED in item.metadata)


def field_labels(record_class: type) -> Dict[str, str]:
    """name -> what people call it (the Events page's column headings), for every stored
    field: its declared `label`, or one derived from its name."""
    return {item.name: item.metadata.get(_LABEL) or default_label(item.name)
            for item in fields(record_class) if _STORED in item.metadata}


def default_label(name: str) -> str:
    """`product_id` -> 'Product', `delivery_count` -> 'Delivery count': a field named after
    what it identifies is called by that name."""
    if name.endswith('_id') and name != '_id':
        name = name[:-len('_id')]
    words = name.replace('_', ' ').strip()
    return words[:1].upper() + words[1:]


def _declared(stored: Stored, label: Optional[str]) -> Dict[str, Any]:
    return {_STORED: stored, _LABEL: label} if label else {_STORED: stored}


def _value_at(data: Any, path: Tuple[str, ...]) -> Any:
    for name in path:
        if not isinstance(data, AnyMapping):
            return None
        data = data.get(name)
    return data
