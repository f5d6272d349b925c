"""`MilvusIndex`: a search backend answering from a collection that holds the catalog's current vectors."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from fashionrec.catalog.catalog import Catalog
from fashionrec.errors import CatalogError
from fashionrec.scale.milvus.client import connect, disconnect
from fashionrec.scale.milvus.push import check_fits, holds_snapshot
from fashionrec.scale.milvus.schema import PROPERTY, filter_expression, filter_fields, search_params_for
from fashionrec.scale.milvus.target import MilvusTarget, parse_target
from fashionrec.search.backend import Neighbours, Restriction
from fashionrec.search.exact import rank_rows

MAX_TOPK = 16_384  # Milvus' limit on one search's k


UNKNOWN_MARGIN = 16  # extra hits asked for, in case some are products a newer snapshot added


class MilvusIndex:
    """A `SearchBackend` answering from a Milvus collection that holds the catalog's current vectors.

    The catalog's own vectors are never read: the query vector of "more like this" and the neighbours'
    vectors (for near-duplicate checks) come from Milvus, and distances are computed from those, so they are
    the numbers exact search reports.
    """

    name = "milvus"

    def __init__(self, client: Any, target: MilvusTarget, catalog: Catalog, fields: dict[str, str],
                 search_params: dict[str, Any]) -> None:
        self._client = client
        self._target = target
        self._catalog = catalog
        self._fields = fields
        self.search_params = search_params

    @classmethod
    def open(cls, address: str, catalog: Catalog) -> MilvusIndex:
        """Connect to the collection at `address` and check it holds this catalog's vectors, as they are now.

        Raises:
            CatalogError: no such collection, or it holds an older copy of the catalog (push again).
            ModelMismatchError: it holds another model's vectors.
        """
        target = parse_target(address)
        client = connect(target)
        try:
            if not client.has_collection(target.collection):
                raise CatalogError(f"there is no collection {target.collection!r} at {target.uri}; "
                                   f"run fashionrec push --catalog {catalog.catalog_dir} --to {address}")
            properties = check_fits(client, target, catalog, filter_fields(catalog.columns))
            if not holds_snapshot(properties, catalog):
                raise CatalogError(f"the collection {target.collection!r} holds an older or unfinished copy of the "
                                   f"catalog {catalog.catalog_dir}; run fashionrec push again")
            client.load_collection(target.collection)
        except BaseException:
            disconnect(client, target)
            raise
        fields = json.loads(properties[PROPERTY + "fields"])
        index = properties.get(PROPERTY + "index", "FLAT")
        return cls(client, target, catalog, fields,
                   search_params_for(index, int(properties.get(PROPERTY + "nlist") or 0)))

    def for_catalog(self, catalog: Catalog) -> MilvusIndex:
        """This collection, on the same connection, for a newer snapshot of the catalog (pushed already).

        Raises:
            CatalogError: the collection does not hold that snapshot (push it first).
        """
        properties = self._client.describe_collection(self._target.collection).get("properties", {})
        if not holds_snapshot(properties, catalog):
            raise CatalogError(f"the collection {self._target.collection!r} does not hold generation "
                               f"{catalog.generation} of the catalog {catalog.catalog_dir} yet; push it first")
        return MilvusIndex(self._client, self._target, catalog, self._fields, self.search_params)

    def search(self, query: np.ndarray, k: int, restriction: Restriction | None = None) -> Neighbours:
        """See `SearchBackend.search`. Rows this snapshot does not know (pushed by another server process following a
        newer one) are passed over."""
        restriction = restriction or Restriction()
        k = min(k, restriction.count(len(self._catalog)), MAX_TOPK)
        if k < 1:
            return Neighbours(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        expression = filter_expression(restriction.where, [self._catalog.ids[row] for row in restriction.exclude],
                                       self._fields)
        params = dict(self.search_params)
        if "ef" in params.get("params", {}):
            params["params"] = {"ef": max(params["params"]["ef"], k)}
        hits = self._client.search(self._target.collection, data=[np.asarray(query, dtype=np.float32).tolist()],
                                   limit=min(k + UNKNOWN_MARGIN, MAX_TOPK), filter=expression,
                                   output_fields=["id", "vector"], search_params=params)[0]
        hits = [hit for hit in hits if hit["entity"]["id"] in self._catalog]
        positions = np.array([self._catalog.position(hit["entity"]["id"]) for hit in hits], dtype=np.int64)
        vectors = np.array([hit["entity"]["vector"] for hit in hits], dtype=np.float32).reshape(len(hits), -1)
        order, distances = rank_rows(vectors, positions, query)  # as every backend ranks
        return Neighbours(positions[order[:k]], distances[:k], vectors[order[:k]])

    def vector(self, position: int) -> np.ndarray:
        """See `SearchBackend.vector`: read from the collection (the catalog's own copy stays unread)."""
        product_id = self._catalog.ids[position]
        rows = self._client.get(self._target.collection, ids=[product_id], output_fields=["vector"])
        if not rows:
            raise CatalogError(f"product {product_id!r} is missing from the collection {self._target.collection!r}; "
                               f"run fashionrec push again")
        return np.asarray(rows[0]["vector"], dtype=np.float32)

    def close(self) -> None:
        """Release the connection (and a Milvus Lite file, which one program opens at a time)."""
        disconnect(self._client, self._target)
