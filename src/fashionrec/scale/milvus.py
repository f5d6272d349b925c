"""Search served by Milvus: `push` copies a catalog's search vectors and filterable metadata into a collection,
and `MilvusIndex` answers `Recommender` queries from it.

A collection holds one catalog: the product id (primary key), the search vector (whitened and tuned, as
`Catalog.vectors`), a digest of vector and metadata (so a later push sends only changed products), one
VARCHAR field per metadata column holding the lower-cased value (filters ignore case, as in-process), and
the original metadata as JSON. Its properties record the model and the catalog fingerprint the vectors come
from: a server refuses a collection that holds another model's vectors, or a stale or unfinished copy.
Serving from it never reads the catalog's own vectors (see `MilvusIndex`).

Filters become Milvus boolean expressions built only from field names the collection was created with and
string literals escaped here (`milvus_string`), so a filter value is always data, never expression.

Addresses: `milvus://HOST[:PORT]/COLLECTION` (plain gRPC), `milvuss://HOST[:PORT]/COLLECTION` (TLS, as https://
is to http://), `milvus-lite:///path/file.db`. Credentials never go in an address, where `ps`, shell history and
logs would show them: they come from FASHIONREC_MILVUS_TOKEN ("user:password" or an API key) or from the file
FASHIONREC_MILVUS_TOKEN_FILE names (docs/SCALING.md, "Running Milvus safely").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionrec.catalog.catalog import Catalog
from fashionrec.config import Settings, load_settings
from fashionrec.errors import CatalogError, FashionrecError, FilterError, ModelMismatchError
from fashionrec.search.backend import Neighbours, Restriction
from fashionrec.search.exact import rank_rows

log = logging.getLogger(__name__)

DEFAULT_COLLECTION = "fashionrec"
DEFAULT_PORT = 19530
SERVER_SCHEMES = {"milvus": "http", "milvuss": "https"}  # address scheme -> client URI scheme (https: TLS)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
INDEX_TYPES = ("FLAT", "HNSW", "IVF_FLAT")
HNSW_PARAMS = {"M": 32, "efConstruction": 80}  # as fashionrec's FAISS HNSW (docs/PERFORMANCE.md)
HNSW_EF = 512  # search breadth: recall@10 0.969 at 1M for the FAISS graph with the same parameters
MAX_TOPK = 16_384  # Milvus' limit on one search's k
UNKNOWN_MARGIN = 16  # extra hits asked for, in case some are products a newer snapshot added
PUSH_BATCH = 1_000  # rows per upsert request (512-d: 2 MB, far below gRPC's 64 MB)
MAX_TEXT = 65_535  # Milvus' longest VARCHAR
RESERVED_FIELDS = ("id", "vector", "digest", "metadata")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_PROPERTY = "fashionrec."


@dataclass(frozen=True)
class MilvusTarget:
    """Where a collection lives: the client URI (a server, or a Milvus Lite file) and the collection name."""

    uri: str
    collection: str
    token: str = field(default="", repr=False)  # credentials: never printed

    @property
    def lite(self) -> bool:
        """Milvus Lite: a local file, opened in-process by one program at a time."""
        return not self.uri.startswith(("http://", "https://"))


@dataclass(frozen=True)
class PushReport:
    """The outcome of one push."""

    target: MilvusTarget
    added: int
    updated: int
    removed: int
    unchanged: int
    products: int  # rows in the collection after the push
    index: str
    seconds: float


def parse_target(address: str, settings: Settings | None = None) -> MilvusTarget:
    """`milvus://HOST[:PORT]/COLLECTION`, `milvuss://HOST[:PORT]/COLLECTION` (TLS) or
    `milvus-lite:///path/file.db[?collection=NAME]`; a server's credentials come from the settings
    (FASHIONREC_MILVUS_TOKEN or FASHIONREC_MILVUS_TOKEN_FILE), never from the address.

    Raises:
        FashionrecError: the address is not one of those forms, holds credentials, or names no valid collection;
            the credentials settings are both set, or their file is missing, unreadable or empty.

    Example:
        >>> parse_target("milvuss://db.internal/shop")
        MilvusTarget(uri='https://db.internal:19530', collection='shop')
        >>> parse_target("milvus-lite:///srv/catalog.db").collection
        'fashionrec'
    """
    parsed = urllib.parse.urlsplit(address.strip())
    scheme = parsed.scheme.lower()
    if scheme in SERVER_SCHEMES:
        if parsed.username is not None or parsed.password is not None:
            raise FashionrecError(
                f"a Milvus address cannot hold credentials (ps, shell history and logs would show them): use "
                f"{_without_credentials(parsed)} and put USER:PASSWORD or an API key in FASHIONREC_MILVUS_TOKEN, or in "
                f"a file named by FASHIONREC_MILVUS_TOKEN_FILE")
        if not parsed.hostname:
            raise FashionrecError(f"a Milvus address needs a host: {scheme}://HOST:{DEFAULT_PORT}/COLLECTION, "
                                  f"got {address!r}")
        collection = parsed.path.strip("/") or DEFAULT_COLLECTION
        host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        token = milvus_token(settings or load_settings())
        if token and scheme == "milvus" and parsed.hostname not in LOOPBACK_HOSTS:
            log.warning("the Milvus credentials go unencrypted to %s: use milvuss://%s/%s (TLS) unless the network "
                        "between you is private", parsed.hostname, parsed.netloc, collection)
        target = MilvusTarget(f"{SERVER_SCHEMES[scheme]}://{host}:{parsed.port or DEFAULT_PORT}", collection, token)
    elif scheme == "milvus-lite":
        path = urllib.parse.unquote(parsed.netloc + parsed.path)
        if not path.endswith(".db"):
            raise FashionrecError(f"a Milvus Lite address names a .db file: milvus-lite:///path/catalog.db, "
                                  f"got {address!r}")
        collection = urllib.parse.parse_qs(parsed.query).get("collection", [DEFAULT_COLLECTION])[0]
        target = MilvusTarget(path, collection)
    else:
        raise FashionrecError(f"a Milvus address starts with milvus://, milvuss:// (TLS) or milvus-lite://, "
                              f"got {address!r}")
    if not _NAME.fullmatch(target.collection):
        raise FashionrecError(f"{target.collection!r} is not a Milvus collection name (letters, digits, _)")
    return target


def milvus_token(settings: Settings) -> str:
    """The Milvus server's credentials from FASHIONREC_MILVUS_TOKEN or FASHIONREC_MILVUS_TOKEN_FILE ("" if neither).

    Raises:
        FashionrecError: both are set, or the file is missing, unreadable or empty.
    """
    path = settings.milvus_token_file
    if path is None:
        return settings.milvus_token
    if settings.milvus_token:
        raise FashionrecError("set only one of FASHIONREC_MILVUS_TOKEN and FASHIONREC_MILVUS_TOKEN_FILE")
    try:
        token = path.read_text(encoding="utf-8").strip()
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FashionrecError(f"the Milvus credentials file {path} (FASHIONREC_MILVUS_TOKEN_FILE) does not "
                              f"exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FashionrecError(f"cannot read the Milvus credentials file {path} (FASHIONREC_MILVUS_TOKEN_FILE): "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    if not token:
        raise FashionrecError(f"the Milvus credentials file {path} (FASHIONREC_MILVUS_TOKEN_FILE) is empty: write "
                              f"USER:PASSWORD or an API key in it")
    if mode & 0o077:
        log.warning("other users can read the Milvus credentials file %s: chmod 600 %s", path, path)
    return token


def _without_credentials(parsed: urllib.parse.SplitResult) -> str:
    """The address with its user and password left out (for a message that must not repeat them)."""
    host = parsed.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parsed.scheme, host, parsed.path, parsed.query, ""))


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
        if _NAME.fullmatch(column) and column not in RESERVED_FIELDS:
            fields[column] = column
        else:
            log.warning("the metadata column %r is not a Milvus field name: it is kept in metadata, not filterable",
                        column)
    return fields


def product_digest(vector: np.ndarray, metadata: Mapping[str, str | None]) -> str:
    """What a push compares to decide whether a product changed: its search vector and its metadata."""
    digest = hashlib.sha256(np.ascontiguousarray(vector, dtype=np.float32).tobytes())
    digest.update(json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()


def push(catalog: Catalog, address: str, index: str = "FLAT", recreate: bool = False) -> PushReport:
    """Copy the catalog's search vectors and metadata into a Milvus collection, sending only what changed.

    Args:
        catalog: an open catalog.
        address: `milvus://HOST:PORT/COLLECTION` or `milvus-lite:///path/file.db` (see `parse_target`).
        index: the collection's vector index for a new collection: FLAT (exact), HNSW or IVF_FLAT.
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
    index = index.upper()
    if index not in INDEX_TYPES:
        raise FashionrecError(f"the Milvus index must be one of {', '.join(INDEX_TYPES)}, got {index!r}")
    target = parse_target(address)
    if target.lite:
        Path(target.uri).parent.mkdir(parents=True, exist_ok=True)
    with _client(target) as client:
        if recreate and client.has_collection(target.collection):
            client.drop_collection(target.collection)
        fields = filter_fields(catalog.columns)
        if client.has_collection(target.collection):
            properties = _check_fits(client, target, catalog, fields)
            index = properties.get(_PROPERTY + "index", index)
        else:
            _create(client, target, catalog, fields, index)
        properties = client.describe_collection(target.collection).get("properties", {})
        if _can_send_changes_only(properties, catalog):
            return _push_changes(client, target, catalog, fields, index, int(properties[_PROPERTY + "generation"]),
                                 started)
        before = _stored_digests(client, target.collection)
        digests = [product_digest(catalog.vectors[row], catalog.metadata_at(row)) for row in range(len(catalog))]
        changed = [row for row, product_id in enumerate(catalog.ids) if before.get(product_id) != digests[row]]
        gone = sorted(set(before) - set(catalog.ids))
        if changed or gone:  # from here until the end the collection holds no whole catalog: say so
            client.alter_collection_properties(target.collection, {_PROPERTY + "fingerprint": ""})
        for start in range(0, len(changed), PUSH_BATCH):
            rows = changed[start:start + PUSH_BATCH]
            client.upsert(target.collection, [_entity(catalog, row, digests[row], fields) for row in rows])
        for start in range(0, len(gone), PUSH_BATCH):
            client.delete(target.collection, ids=gone[start:start + PUSH_BATCH])
        client.flush(target.collection)  # seal what was written, so it is indexed rather than scanned
        _mark_complete(client, target, catalog)
        added = sum(catalog.ids[row] not in before for row in changed)
        return PushReport(target, added, len(changed) - added, len(gone), len(catalog) - len(changed), len(catalog),
                          index, time.perf_counter() - started)


def _can_send_changes_only(properties: Mapping[str, str], catalog: Catalog) -> bool:
    """Whether the collection holds an earlier snapshot of this very catalog in this search space, so that the rows
    written (and removed) since that snapshot's generation are all that differs."""
    generation = properties.get(_PROPERTY + "generation", "")
    return (generation.isdigit() and int(generation) <= catalog.generation
            and properties.get(_PROPERTY + "space") == catalog.keys.space
            and properties.get(_PROPERTY + "catalog") == str(catalog.catalog_dir.resolve()))


def _push_changes(client: Any, target: MilvusTarget, catalog: Catalog, fields: dict[str, str], index: str,
                  since: int, started: float) -> PushReport:
    """Send the products written since generation `since`, delete those removed since; never read the others."""
    from fashionrec.catalog.store import CatalogStore

    with CatalogStore(catalog.catalog_dir) as store, store.snapshot():
        if store.generation() != catalog.generation:
            raise CatalogError(f"the catalog {catalog.catalog_dir} changed while it was being pushed; push again")
        written, removed = store.written_since(since)
        model_vectors = store.vectors_of(written, catalog.dim)
        histograms = store.colours_of(written) if catalog.has_colour else {}
    written = [product_id for product_id in written if product_id in catalog]
    removed = [product_id for product_id in removed if product_id not in catalog]
    vectors = {product_id: _search_vector(catalog, model_vectors[product_id], histograms.get(product_id))
               for product_id in written}
    digests = {product_id: product_digest(vectors[product_id], catalog.metadata(product_id)) for product_id in written}
    before = {}
    client.load_collection(target.collection)
    for start in range(0, len(written), PUSH_BATCH):
        rows = client.get(target.collection, ids=written[start:start + PUSH_BATCH], output_fields=["id", "digest"])
        before.update((row["id"], row["digest"]) for row in rows)
    changed = [product_id for product_id in written if before.get(product_id) != digests[product_id]]
    if changed or removed:
        client.alter_collection_properties(target.collection, {_PROPERTY + "fingerprint": ""})
    for start in range(0, len(changed), PUSH_BATCH):
        client.upsert(target.collection, [_row(catalog, product_id, vectors[product_id], digests[product_id], fields)
                                          for product_id in changed[start:start + PUSH_BATCH]])
    for start in range(0, len(removed), PUSH_BATCH):
        client.delete(target.collection, ids=removed[start:start + PUSH_BATCH])
    if changed or removed:
        client.flush(target.collection)
    _mark_complete(client, target, catalog)
    added = sum(product_id not in before for product_id in changed)
    return PushReport(target, added, len(changed) - added, len(removed), len(catalog) - len(changed), len(catalog),
                      index, time.perf_counter() - started)


def _search_vector(catalog: Catalog, model_vector: np.ndarray, histogram: np.ndarray | None) -> np.ndarray:
    """One product's search vector (what `Catalog.vectors` holds for it) from its model vector and colour."""
    return catalog.search_vectors(model_vector[None], None if histogram is None else histogram[None])[0]


def _mark_complete(client: Any, target: MilvusTarget, catalog: Catalog) -> None:
    """Written last: until a push is complete the collection does not claim to hold this catalog's snapshot."""
    client.alter_collection_properties(target.collection, {
        _PROPERTY + "fingerprint": catalog.fingerprint, _PROPERTY + "generation": str(catalog.generation),
        _PROPERTY + "space": catalog.keys.space, _PROPERTY + "catalog": str(catalog.catalog_dir.resolve())})


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
        client = _connect(target)
        try:
            if not client.has_collection(target.collection):
                raise CatalogError(f"there is no collection {target.collection!r} at {target.uri}; "
                                   f"run fashionrec push --catalog {catalog.catalog_dir} --to {address}")
            properties = _check_fits(client, target, catalog, filter_fields(catalog.columns))
            if properties.get(_PROPERTY + "fingerprint") != catalog.fingerprint:
                raise CatalogError(f"the collection {target.collection!r} holds an older or unfinished copy of the "
                                   f"catalog {catalog.catalog_dir}; run fashionrec push again")
            client.load_collection(target.collection)
        except BaseException:
            _disconnect(client, target)
            raise
        fields = json.loads(properties[_PROPERTY + "fields"])
        index = properties.get(_PROPERTY + "index", "FLAT")
        return cls(client, target, catalog, fields,
                   search_params_for(index, int(properties.get(_PROPERTY + "nlist") or 0)))

    def for_catalog(self, catalog: Catalog) -> MilvusIndex:
        """This collection, on the same connection, for a newer snapshot of the catalog (pushed already).

        Raises:
            CatalogError: the collection does not hold that snapshot (push it first).
        """
        properties = self._client.describe_collection(self._target.collection).get("properties", {})
        if properties.get(_PROPERTY + "fingerprint") != catalog.fingerprint:
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
        _disconnect(self._client, self._target)


def _create(client: Any, target: MilvusTarget, catalog: Catalog, fields: dict[str, str], index: str) -> None:
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
    with _quiet("grpc._server"):  # Milvus Lite logs a traceback for a timestamp call it does not implement
        client.create_collection(target.collection, schema=schema, index_params=index_params, properties={
            _PROPERTY + "model_id": catalog.model_id, _PROPERTY + "dim": str(catalog.search_dim),
            _PROPERTY + "fields": json.dumps(fields), _PROPERTY + "index": index,
            _PROPERTY + "nlist": str(params.get("nlist", 0)), _PROPERTY + "fingerprint": "",
        })


def _check_fits(client: Any, target: MilvusTarget, catalog: Catalog, fields: dict[str, str]) -> dict[str, str]:
    """The collection's properties, once it is sure to hold vectors comparable with this catalog's."""
    properties = client.describe_collection(target.collection).get("properties", {})
    model_id = properties.get(_PROPERTY + "model_id")
    if model_id is None:
        raise CatalogError(f"the collection {target.collection!r} at {target.uri} was not made by fashionrec push; "
                           f"choose another collection")
    if model_id != catalog.model_id:
        raise ModelMismatchError(f"the collection {target.collection!r} holds {model_id} vectors, not "
                                 f"{catalog.model_id}; push to another collection, or push --recreate")
    if properties.get(_PROPERTY + "dim") != str(catalog.search_dim):
        raise CatalogError(f"the collection {target.collection!r} holds {properties.get(_PROPERTY + 'dim')}-d "
                           f"vectors, the catalog now {catalog.search_dim}-d (its whitening or its colour changed); "
                           f"push --recreate")
    if json.loads(properties.get(_PROPERTY + "fields", "{}")) != fields:
        raise CatalogError(f"the collection {target.collection!r} has other metadata fields than the catalog's "
                           f"columns; push --recreate")
    return properties


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


def _entity(catalog: Catalog, row: int, digest: str, fields: dict[str, str]) -> dict[str, Any]:
    """One product as a collection row."""
    return _row(catalog, catalog.ids[row], catalog.vectors[row], digest, fields)


def _row(catalog: Catalog, product_id: str, vector: np.ndarray, digest: str, fields: dict[str, str]) -> dict[str, Any]:
    """A product's collection row, from its search vector."""
    metadata = catalog.metadata(product_id)
    entity: dict[str, Any] = {"id": product_id, "vector": np.asarray(vector).tolist(), "digest": digest,
                              "metadata": dict(metadata)}
    for column, field in fields.items():
        entity[field] = (metadata.get(column) or "").lower()[:MAX_TEXT]
    return entity


def _stored_digests(client: Any, collection: str) -> dict[str, str]:
    """{id: digest} of every row in the collection, read page by page."""
    client.load_collection(collection)
    digests: dict[str, str] = {}
    with _quiet("pymilvus"):  # it warns that Milvus Lite gives no server timestamp, then uses its own
        iterator = client.query_iterator(collection, batch_size=PUSH_BATCH, filter="", output_fields=["id", "digest"])
        try:
            while page := iterator.next():
                digests.update((row["id"], row["digest"]) for row in page)
        finally:
            iterator.close()
    return digests


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Silence libraries' loggers for a call whose failure they handle themselves."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def _client(target: MilvusTarget) -> Iterator[Any]:
    """A connection for the duration of a `with` block."""
    client = _connect(target)
    try:
        yield client
    finally:
        _disconnect(client, target)


_lite_users: dict[str, int] = {}  # open connections per Milvus Lite file in this process


def _disconnect(client: Any, target: MilvusTarget) -> None:
    """Close a connection; the last one to a Milvus Lite file also stops its in-process server, which frees
    the file for other programs (pymilvus would keep it until this process exits)."""
    client.close()
    if not target.lite:
        return
    path = str(Path(target.uri).resolve())
    _lite_users[path] = _lite_users.get(path, 1) - 1
    if _lite_users[path] <= 0:
        del _lite_users[path]
        from milvus_lite.server_manager import server_manager_instance

        with _quiet("milvus_lite"):
            server_manager_instance.release_server(target.uri)


def _connect(target: MilvusTarget) -> Any:
    """A MilvusClient for the target, or a clear error."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise FashionrecError("Milvus search needs pymilvus (and milvus-lite for local files): "
                              "pip install 'fashionrec[scale]'") from None
    try:
        with _quiet("milvus_lite", "pymilvus"):  # their tracebacks; the error below says what went wrong
            client = MilvusClient(uri=target.uri, token=target.token)
    except Exception as exc:  # pymilvus raises its own exception types for connection failures
        if target.lite and _locked(Path(target.uri)):
            raise FashionrecError(f"the Milvus Lite file {target.uri} is open in another program; Milvus Lite "
                                  f"serves one program at a time (run a Milvus server to share a collection)") from None
        raise FashionrecError(f"cannot connect to Milvus at {target.uri}: {exc}") from None
    if target.lite:
        path = str(Path(target.uri).resolve())
        _lite_users[path] = _lite_users.get(path, 0) + 1
    return client


def _locked(lite_file: Path) -> bool:
    """Whether another process holds a Milvus Lite file (a folder with a LOCK file it flocks)."""
    import fcntl

    lock = lite_file / "LOCK"
    if not lock.is_file():
        return False
    with open(lock, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False
