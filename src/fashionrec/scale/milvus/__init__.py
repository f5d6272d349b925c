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

`target` (addresses, credentials), `client` (connections), `schema` (fields, index, filter expressions), `push`
(copying, and whether a collection is current: the one owner of that decision), `index` (`MilvusIndex`).
"""

from fashionrec.scale.milvus.index import MilvusIndex
from fashionrec.scale.milvus.push import PushReport, push
from fashionrec.scale.milvus.target import MilvusTarget, parse_target

__all__ = ["MilvusIndex", "MilvusTarget", "PushReport", "parse_target", "push"]
