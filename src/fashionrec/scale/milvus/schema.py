"""A catalog's collection: its fields, vector index and properties, and filters as escaped Milvus expressions."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fashionrec.catalog.catalog import Catalog
from fashionrec.errors import FilterError
from fashionrec.scale.milvus.client import quiet
from fashionrec.scale.milvus.target import NAME_PATTERN, MilvusTarget

log = logging.getLogger(__name__)


INDEX_TYPES = ("FLAT", "HNSW", "IVF_FLAT")


HNSW_PARAMS = {"M": 32, "efConstruction": 80}  # as fashionrec's FAISS HNSW (docs/PERFORMANCE.md)


HNSW_EF = 512  # search breadth: recall@10 0.969 at 1M for the FAISS graph with the same parameters


MAX_TEXT = 65_535  # Milvus' longest VARCHAR


RESERVED_FIELDS = ("id", "vector", "digest", "metadata")


PROPERTY = "fashionrec."


def milvus_string(value: str) -> str:
    """`value` as a Milvus string literal: quotes and backslashes escaped, so it can only ever be data.

    Raises:
        FilterError: the value holds a control character (no product metadata does).

    Example:
        >>> print(milvus_string('say "hi" \\\\ bye'))
        "say \\"hi\\" \\\\ bye"
    """
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise FilterError(f"a filter value cannot hold control characters: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def filter_expression(where: Mapping[str, Sequence[str]], exclude_ids: Sequence[str], fields: Mapping[str, str]) -> str:
    """The Milvus boolean expression for lower-cased filters (column -> values; one column: any of them,
    several columns: all) and ids to leave out. `fields` maps columns to the collection's field names.

    Raises:
        FilterError: a column has no field in the collection.

    Example:
        >>> filter_expression({"gender": ["men"]}, ["15970"], {"gender": "gender"})
        'gender in ["men"] and id not in ["15970"]'
    """
    clauses = []
    for column, values in where.items():
        if column not in fields:
            raise FilterError(f"the column {column!r} was not pushed to Milvus as a filter field; "
                              f"its filter fields are: {', '.join(fields) or 'none'}")
        clauses.append(f"{fields[column]} in [{', '.join(milvus_string(v) for v in values)}]")
    if exclude_ids:
        clauses.append(f"id not in [{', '.join(milvus_string(i) for i in exclude_ids)}]")
    return " and ".join(clauses)


def filter_fields(columns: Sequence[str]) -> dict[str, str]:
    """The metadata columns that become filter fields (column -> field name): names Milvus accepts, minus
    the collection's own fields."""
    fields = {}
    for column in columns:
        if NAME_PATTERN.fullmatch(column) and column not in RESERVED_FIELDS:
            fields[column] = column
        else:
            log.warning("the metadata column %r is not a Milvus field name: it is kept in metadata, not filterable",
                        column)
    return fields


def create_collection(client: Any, target: MilvusTarget, catalog: Catalog, fields: dict[str, str], index: str) -> None:
    """A new collection for this catalog: schema, vector index, and the properties that identify its vectors."""
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False,
                                  description=f"fashionrec catalog ({catalog.model_name})")
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=catalog.search_dim)
    schema.add_field("digest", DataType.VARCHAR, max_length=64)
    for field in fields.values():
        schema.add_field(field, DataType.VARCHAR, max_length=MAX_TEXT)
    schema.add_field("metadata", DataType.JSON)
    index_params = client.prepare_index_params()
    params = HNSW_PARAMS if index == "HNSW" else {"nlist": ivf_nlist(len(catalog))} if index == "IVF_FLAT" else {}
    index_params.add_index(field_name="vector", index_type=index, metric_type="IP", params=params)
    with quiet("grpc._server"):  # Milvus Lite logs a traceback for a timestamp call it does not implement
        client.create_collection(target.collection, schema=schema, index_params=index_params, properties={
            PROPERTY + "model_id": catalog.model_id, PROPERTY + "dim": str(catalog.search_dim),
            PROPERTY + "fields": json.dumps(fields), PROPERTY + "index": index,
            PROPERTY + "nlist": str(params.get("nlist", 0)), PROPERTY + "fingerprint": "",
        })


def search_params_for(index: str, nlist: int = 0) -> dict[str, Any]:
    """Search parameters for a collection's index (HNSW breadth and IVF probes chosen for recall@10 >= 0.95)."""
    if index == "HNSW":
        return {"metric_type": "IP", "params": {"ef": HNSW_EF}}
    if index == "IVF_FLAT":
        return {"metric_type": "IP", "params": {"nprobe": max(32, nlist // 4)}}
    return {"metric_type": "IP", "params": {}}


def ivf_nlist(products: int) -> int:
    """IVF cluster count: about 4 sqrt(n), the usual rule, kept between 16 and 65,536."""
    return int(min(65_536, max(16, 4 * round(products**0.5))))


def entity(catalog: Catalog, row: int, digest: str, fields: dict[str, str]) -> dict[str, Any]:
    """One product as a collection row."""
    return product_row(catalog, catalog.ids[row], catalog.vectors[row], digest, fields)


def product_row(catalog: Catalog, product_id: str, vector: np.ndarray, digest: str, fields: dict[str, str]) -> dict[str, Any]:
    """A product's collection row, from its search vector."""
    metadata = catalog.metadata(product_id)
    entity: dict[str, Any] = {"id": product_id, "vector": np.asarray(vector).tolist(), "digest": digest,
                              "metadata": dict(metadata)}
    for column, field in fields.items():
        entity[field] = (metadata.get(column) or "").lower()[:MAX_TEXT]
    return entity


