"""What the MongoDB logic asks of a collection, whichever way it reaches the server.

The driver backend answers through PyMongo or Motor, the Data API backend through HTTP
actions; `mongo_store` holds the logic once, above both. Every method raises the
application's errors (`DuplicateKey` when a unique index refused a write), never a driver's.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

Document = Dict[str, Any]
Filter = Mapping[str, Any]


class MongoCollection(ABC):
    """One collection of one database."""

    @abstractmethod
    async def find_one(self, query: Filter, projection: Optional[Filter] = None,
                       ) -> Optional[Document]:
        ...

    @abstractmethod
    async def find(
        self,
        query: Filter,
        *,
        limit: int,
        projection: Optional[Filter] = None,
        sort: Sequence[Tuple[str, int]] = (),
        skip: int = 0,
        hint: Optional[Sequence[Tuple[str, int]]] = None,
    ) -> List[Document]:
        """At most `limit` documents (at least 1). `hint`, the keys of the index that serves
        the query, is passed on where the server takes hints."""

    @abstractmethod
    async def count(self, query: Filter) -> int:
        ...

    @abstractmethod
    async def aggregate(self, pipeline: List[Document]) -> List[Document]:
        """The pipeline's documents; a server may return only its first batch (101
        documents), so pipelines here yield fewer."""

    @abstractmethod
    async def insert_one(self, document: Document) -> None:
        ...

    @abstractmethod
    async def update_one(self, query: Filter, update: Document, *, upsert: bool = False,
                         ) -> Optional[int]:
        """How many documents the filter matched; None when the server did not say."""

    @abstractmethod
    async def update_many(self, query: Filter, update: Document) -> None:
        ...

    @abstractmethod
    async def delete_one(self, query: Filter) -> None:
        ...

    @abstractmethod
    async def delete_many(self, query: Filter) -> int:
        """How many documents this call deleted."""

    @abstractmethod
    async def upsert_and_read(self, query: Filter, update: Document, projection: Filter,
                              ) -> Optional[Document]:
        """Apply the upsert and return the document as it is afterwards (projected); None
        when it could not be read back."""


@dataclass(frozen=True)
class Collections:
    """The events and the collections named from them."""

    events: MongoCollection
    counts: MongoCollection
    installations: MongoCollection
    schema: MongoCollection
