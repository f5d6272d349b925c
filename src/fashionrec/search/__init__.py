"""k-nearest-neighbour search over unit vectors: exact (numpy) by default, FAISS HNSW for large catalogs.

`backend` (the interface and what it answers), `exact`, `dedupe` (one product per duplicate group), `block` (a
whole catalog against itself), `hnsw` (FAISS), `select` (which backend serves a catalog, and whether its file is
current).

Every index answers through one interface, `SearchBackend.search(query, k, restriction)`: `ExactIndex`,
`AnnIndex` (FAISS, `hnsw`), and `fashionrec.scale.milvus.MilvusIndex` for a Milvus server. A `Restriction`
carries which rows a query may return both as a row mask (for indexes over the catalog's rows) and as
the filters it came from (for an external index that knows products by id).

On unit vectors Euclidean distance and cosine similarity rank alike (d^2 = 2 - 2 cos), so the
candidates are found by one matrix product, and the few winners are then ranked by their exact distances (ties
by row). BLAS gives two equal vectors scores a few ulps apart depending on where they sit in the matrix (and
a matrix-matrix product other ulps than a matrix-vector one), so ranking by those scores would order exact
copies differently in different searches; the distances are computed row by row, the same way everywhere.
"""
