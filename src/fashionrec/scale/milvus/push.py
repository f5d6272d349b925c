"""Copy a catalog into its collection, sending only what changed; the one owner of whether a collection is current."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashionrec.catalog.catalog import Catalog
from fashionrec.errors import CatalogError, FashionrecError, ModelMismatchError
from fashionrec.scale.milvus.client import client_for, quiet
from fashionrec.scale.milvus.schema import INDEX_TYPES, PROPERTY, create_collection, entity, filter_fields, product_row
from fashionrec.scale.milvus.target import MilvusTarget, parse_target

PUSH_BATCH = 1_000  # rows per upsert request (512-d: 2 MB, far below gRPC's 64 MB)


@dataclass(frozen=True)
class PushReport:
    """The outcome of one push."""

    target: MilvusTarget
    added: int
    updated: int
    removed: int
    unchanged: int
    products: int  # rows in the collection after the push
    index_type: str  # the collection's vector index: FLAT, HNSW or IVF_FLAT
    seconds: float

    @property
    def index(self) -> str:
        """Deprecated (fashionrec 0.1): `index_type`."""
        return self.index_type


def product_digest(vector: np.ndarray, metadata: Mapping[str, str | None]) -> str:
    """What a push compares to decide whether a product changed: its search vector and its metadata."""
    digest = hashlib.sha256(np.ascontiguousarray(vector, dtype=np.float32).tobytes())
    digest.update(json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()


def push(catalog: Catalog, address: str, index_type: str = "FLAT", recreate: bool = False) -> PushReport:
    """Copy the catalog's search vectors and metadata into a Milvus collection, sending only what changed.

    Args:
        catalog: an open catalog.
        address: `milvus://HOST:PORT/COLLECTION` or `milvus-lite:///path/file.db` (see `parse_target`).
        index_type: the collection's vector index for a new collection: FLAT (exact), HNSW or IVF_FLAT.
        recreate: drop the collection first (needed when it holds another model's vectors, another dimension,
            or other metadata columns).

    Raises:
        ModelMismatchError: the collection holds another model's vectors (push elsewhere, or `recreate`).
        CatalogError: the collection's dimension or fields do not fit this catalog (`recreate`).
        FashionrecError: a bad address or index, or Milvus cannot be reached.

    Example:
        >>> push(Catalog.open("my-catalog"), "milvus-lite:///srv/catalog.db").products
        7254
    """
    started = time.perf_counter()
    index_type = index_type.upper()
    if index_type not in INDEX_TYPES:
        raise FashionrecError(f"the Milvus index must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}")
    target = parse_target(address)
    if target.lite:
        Path(target.uri).parent.mkdir(parents=True, exist_ok=True)
    with client_for(target) as client:
        if recreate and client.has_collection(target.collection):
            client.drop_collection(target.collection)
        fields = filter_fields(catalog.columns)
        if client.has_collection(target.collection):
            properties = check_fits(client, target, catalog, fields)
            index_type = properties.get(PROPERTY + "index", index_type)
        else:
            create_collection(client, target, catalog, fields, index_type)
        properties = client.describe_collection(target.collection).get("properties", {})
        if _can_send_changes_only(properties, catalog):
            return _push_changes(client, target, catalog, fields, index_type, int(properties[PROPERTY + "generation"]),
                                 started)
        before = _stored_digests(client, target.collection)
        digests = [product_digest(catalog.vectors[row], catalog.metadata_at(row)) for row in range(len(catalog))]
        changed = [row for row, product_id in enumerate(catalog.ids) if before.get(product_id) != digests[row]]
        gone = sorted(set(before) - set(catalog.ids))
        if changed or gone:  # from here until the end the collection holds no whole catalog: say so
            client.alter_collection_properties(target.collection, {PROPERTY + "fingerprint": ""})
        for start in range(0, len(changed), PUSH_BATCH):
            rows = changed[start:start + PUSH_BATCH]
            client.upsert(target.collection, [entity(catalog, row, digests[row], fields) for row in rows])
        for start in range(0, len(gone), PUSH_BATCH):
            client.delete(target.collection, ids=gone[start:start + PUSH_BATCH])
        client.flush(target.collection)  # seal what was written, so it is indexed rather than scanned
        _mark_complete(client, target, catalog)
        added = sum(catalog.ids[row] not in before for row in changed)
        return PushReport(target, added, len(changed) - added, len(gone), len(catalog) - len(changed), len(catalog),
                          index_type, time.perf_counter() - started)


def holds_snapshot(properties: Mapping[str, str], catalog: Catalog) -> bool:
    """Whether the collection (its properties) holds exactly this snapshot of the catalog: a whole copy, pushed to
    the end, of these products, metadata and search vectors (its fingerprint). A server serves only such a copy."""
    return properties.get(PROPERTY + "fingerprint") == catalog.fingerprint


def _can_send_changes_only(properties: Mapping[str, str], catalog: Catalog) -> bool:
    """Whether the collection holds an earlier snapshot of this very catalog in this search space, so that the rows
    written (and removed) since that snapshot's generation are all that differs."""
    generation = properties.get(PROPERTY + "generation", "")
    return (generation.isdigit() and int(generation) <= catalog.generation
            and properties.get(PROPERTY + "space") == catalog.keys.space
            and properties.get(PROPERTY + "catalog") == str(catalog.catalog_dir.resolve()))


def _push_changes(client: Any, target: MilvusTarget, catalog: Catalog, fields: dict[str, str], index_type: str,
                  since: int, started: float) -> PushReport:
    """Send the products written since generation `since`, delete those removed since; never read the others."""
    written, removed = catalog.changes_since(since)
    try:
        vectors = dict(zip(written, catalog.read_search_vectors(written)))
    except CatalogError:
        raise CatalogError(f"the catalog {catalog.catalog_dir} changed while it was being pushed; push again") from None
    digests = {product_id: product_digest(vectors[product_id], catalog.metadata(product_id)) for product_id in written}
    before = {}
    client.load_collection(target.collection)
    for start in range(0, len(written), PUSH_BATCH):
        rows = client.get(target.collection, ids=written[start:start + PUSH_BATCH], output_fields=["id", "digest"])
        before.update((row["id"], row["digest"]) for row in rows)
    changed = [product_id for product_id in written if before.get(product_id) != digests[product_id]]
    if changed or removed:
        client.alter_collection_properties(target.collection, {PROPERTY + "fingerprint": ""})
    for start in range(0, len(changed), PUSH_BATCH):
        client.upsert(target.collection, [product_row(catalog, product_id, vectors[product_id], digests[product_id], fields)
                                          for product_id in changed[start:start + PUSH_BATCH]])
    for start in range(0, len(removed), PUSH_BATCH):
        client.delete(target.collection, ids=removed[start:start + PUSH_BATCH])
    if changed or removed:
        client.flush(target.collection)
    _mark_complete(client, target, catalog)
    added = sum(product_id not in before for product_id in changed)
    return PushReport(target, added, len(changed) - added, len(removed), len(catalog) - len(changed), len(catalog),
                      index_type, time.perf_counter() - started)


def _mark_complete(client: Any, target: MilvusTarget, catalog: Catalog) -> None:
    """Written last: until a push is complete the collection does not claim to hold this catalog's snapshot."""
    client.alter_collection_properties(target.collection, {
        PROPERTY + "fingerprint": catalog.fingerprint, PROPERTY + "generation": str(catalog.generation),
        PROPERTY + "space": catalog.keys.space, PROPERTY + "catalog": str(catalog.catalog_dir.resolve())})


def check_fits(client: Any, target: MilvusTarget, catalog: Catalog, fields: dict[str, str]) -> dict[str, str]:
    """The collection's properties, once it is sure to hold vectors comparable with this catalog's."""
    properties = client.describe_collection(target.collection).get("properties", {})
    model_id = properties.get(PROPERTY + "model_id")
    if model_id is None:
        raise CatalogError(f"the collection {target.collection!r} at {target.uri} was not made by fashionrec push; "
                           f"choose another collection")
    if model_id != catalog.model_id:
        raise ModelMismatchError(f"the collection {target.collection!r} holds {model_id} vectors, not "
                                 f"{catalog.model_id}; push to another collection, or push --recreate")
    if properties.get(PROPERTY + "dim") != str(catalog.search_dim):
        raise CatalogError(f"the collection {target.collection!r} holds {properties.get(PROPERTY + 'dim')}-d "
                           f"vectors, the catalog now {catalog.search_dim}-d (its whitening or its colour changed); "
                           f"push --recreate")
    if json.loads(properties.get(PROPERTY + "fields", "{}")) != fields:
        raise CatalogError(f"the collection {target.collection!r} has other metadata fields than the catalog's "
                           f"columns; push --recreate")
    return properties


def _stored_digests(client: Any, collection: str) -> dict[str, str]:
    """{id: digest} of every row in the collection, read page by page."""
    client.load_collection(collection)
    digests: dict[str, str] = {}
    with quiet("pymilvus"):  # it warns that Milvus Lite gives no server timestamp, then uses its own
        iterator = client.query_iterator(collection, batch_size=PUSH_BATCH, filter="", output_fields=["id", "digest"])
        try:
            while page := iterator.next():
                digests.update((row["id"], row["digest"]) for row in page)
        finally:
            iterator.close()
    return digests
