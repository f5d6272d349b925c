"""Brute-force references the tests compare fashionrec with, written without fashionrec's search code.

Everything here is plain numpy (and hashlib) over what a catalog stores: its model vectors (the SQLite store), the
colour part of its search vectors, its image files and its metadata. No function of `fashionrec.search`,
`fashionrec.recommend` or `fashionrec.quality` is called, so a test that compares those modules with these
functions can fail when they are wrong. Only catalogs without a whitening or a tuning are supported (every
catalog the tests build is far too small to be whitened): their shape vectors are the model vectors themselves.

The ranking rule written out here (docs and `recommend.SIMILARITY_MEANING`): a query [shape; w * colour] against
each product's [shape; colour], best inner product first, ties by catalog row; the similarity shown is
(shape cosine + w * colour cosine) / (1 + w).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CatalogArrays:
    """A catalog's stored figures as float64 arrays, row-aligned with `ids`."""

    ids: list[str]
    shape: np.ndarray  # (n, d) the model vectors
    colour: np.ndarray  # (n, c) the colour part of the search vectors ((n, 0) when the catalog has none)
    file_hashes: list[str]  # sha256 of each product's image file, computed here from the file
    metadata: list[dict]


def catalog_arrays(catalog) -> CatalogArrays:
    """Read a catalog (unwhitened, untuned) into plain arrays."""
    assert catalog.space is None, "the brute-force reference handles catalogs without whitening or tuning only"
    shape = np.asarray(catalog.model_vectors, dtype=np.float64)
    search = np.asarray(catalog.vectors, dtype=np.float64)
    # The search vectors are [model vector; colour vector]: the first part must be the stored model vector itself.
    np.testing.assert_allclose(search[:, :shape.shape[1]], shape, atol=1e-6)
    colour = search[:, shape.shape[1]:]
    hashes = [hashlib.sha256(catalog.image_path_at(row).read_bytes()).hexdigest() for row in range(len(catalog))]
    metadata = [dict(catalog.metadata_at(row)) for row in range(len(catalog))]
    return CatalogArrays(list(catalog.ids), shape, colour, hashes, metadata)


def scores(arrays: CatalogArrays, query_shape: np.ndarray, query_colour: np.ndarray | None,
           weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inner product of [q_shape; w q_colour] with every product, shape cosines, colour cosines), row by row."""
    shape = (arrays.shape * np.asarray(query_shape, np.float64)).sum(axis=1)
    if arrays.colour.shape[1] == 0 or query_colour is None:
        colour = np.zeros(len(arrays.ids))
    else:
        colour = (arrays.colour * np.asarray(query_colour, np.float64)).sum(axis=1)
    return shape + weight * colour, shape, colour


@dataclass(frozen=True)
class Ranked:
    """A brute-force answer: product ids nearest first and the similarity of each."""

    ids: list[str]
    similarities: list[float]


def rank(arrays: CatalogArrays, query_shape: np.ndarray, query_colour: np.ndarray | None, weight: float, k: int,
         excluded_rows: set[int] = frozenset(), seen_hashes: set[str] | None = None,
         where: dict[str, list[str]] | None = None) -> Ranked:
    """The k best products for a query by exhaustive sorting.

    `excluded_rows` are never returned; `seen_hashes` None keeps duplicates, else only the first product of each image
    content is kept and products whose content is in `seen_hashes` are left out. `where`: column -> allowed values
    (case-insensitive).
    """
    total, shape, colour = scores(arrays, query_shape, query_colour, weight)
    rows = [row for row in range(len(arrays.ids)) if row not in excluded_rows and _meets(arrays.metadata[row], where)]
    rows.sort(key=lambda row: (-total[row], row))
    taken = None if seen_hashes is None else set(seen_hashes)
    chosen = []
    for row in rows:
        if taken is not None:
            if arrays.file_hashes[row] in taken:
                continue
            taken.add(arrays.file_hashes[row])
        chosen.append(row)
        if len(chosen) == k:
            break
    return Ranked([arrays.ids[row] for row in chosen],
                  [float((shape[row] + weight * colour[row]) / (1 + weight)) for row in chosen])


def more_like(arrays: CatalogArrays, product_id: str, weight: float, k: int, show_duplicates: bool = False,
              where: dict[str, list[str]] | None = None) -> Ranked:
    """ "More like this" by brute force: the product's own vectors as the query, never itself, and (unless
    `show_duplicates`) neither copies of its image nor more than one product per image content."""
    row = arrays.ids.index(product_id)
    return rank(arrays, arrays.shape[row], arrays.colour[row] if arrays.colour.shape[1] else None, weight, k,
                excluded_rows={row}, seen_hashes=None if show_duplicates else {arrays.file_hashes[row]}, where=where)


def _meets(metadata: dict, where: dict[str, list[str]] | None) -> bool:
    return all(str(metadata.get(column) or "").lower() in {v.lower() for v in values}
               for column, values in (where or {}).items())


def leave_one_out_precision(vectors: np.ndarray, labels: list, queries: list[int] | np.ndarray, k: int,
                            query_vectors: np.ndarray | None = None,
                            excluded: dict[int, set[int]] | None = None) -> tuple[float, list[float]]:
    """Micro precision@k and the precision@i curve (i = 1..n-1) of `queries` by exhaustive inner-product ranking.

    Each query row q, as `query_vectors[q]` (default: `vectors[q]`), is ranked against every other row of `vectors`
    (less `excluded[q]`), ties by row; a query is scored when it has a label and another candidate shares it.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    query_vectors = vectors if query_vectors is None else np.asarray(query_vectors, dtype=np.float64)
    per_query, curves = [], []
    for query in queries:
        value = labels[query]
        out = {query} | (excluded or {}).get(query, set())
        candidates = [row for row in range(len(vectors)) if row not in out]
        if value is None or not any(labels[row] == value for row in candidates):
            continue
        similarity = (vectors[candidates] * query_vectors[query]).sum(axis=1)
        order = [candidates[i] for i in sorted(range(len(candidates)), key=lambda i: (-similarity[i], candidates[i]))]
        hits = np.cumsum([labels[row] == value for row in order])
        per_query.append(hits[k - 1] / k)
        curves.append(hits / np.arange(1, len(order) + 1))
    depth = min(len(c) for c in curves)
    return float(np.mean(per_query)), np.mean([c[:depth] for c in curves], axis=0).tolist()
