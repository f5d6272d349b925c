"""Brute-force references the tests compare fashionrec with, written without fashionrec's search code.

Everything here is plain numpy (and hashlib) over what a catalog stores: its model vectors (the SQLite store), the
colour part of its search vectors, its image files and its metadata. No function of `fashionrec.search`,
`fashionrec.recommend`, `fashionrec.quality` or the catalog's whitening is called (only documented constants are
read), so a test that compares those modules with these functions can fail when they are wrong. Catalogs with a
tuning are not supported.

The ranking rule written out here (docs/QUALITY.md and `recommend.SIMILARITY_MEANING`):
- the shape vectors are the model vectors (under MIN_PRODUCTS products), else shrinkage-whitened on the catalog's
  own products: centred, projected on
  the principal axes of their covariance (at most products - 1 and FASHIONREC_WHITEN_DIM of them), each divided by
  sqrt(its variance + SHRINKAGE x the mean variance), at unit length;
- a colour weight W gives the colour layout (the first LAYOUT_DIM elements of the colour vector) the gain
  1.25 min(W / 0.5, 1) and the whole product's colour (the rest) 2.5 max(W - 0.5, 0) / 0.5;
- with colour, the products nearest in shape (3% of the catalog, at least 20, at most 100) come first, best inner
  product of [shape; gains x colour] with [shape; colour] first, ties by catalog row; the others after them, in
  shape order (best shape cosine first, ties by row);
- the similarity shown is the share of the pairs of a sample of products (the 400 smallest content hashes, one
  product per image) whose score at the same gains is lower (ties, within 1e-5, count half).
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fashionrec.catalog.whitening import MIN_PRODUCTS, SHRINKAGE
from fashionrec.config import load_settings
from fashionrec.imaging.colour import LAYOUT_DIM


@dataclass(frozen=True)
class CatalogArrays:
    """A catalog's stored figures as float64 arrays, row-aligned with `ids`."""

    ids: list[str]
    shape: np.ndarray  # (n, r) the shape vectors: the model vectors whitened as the rule above says
    colour: np.ndarray  # (n, c) the colour part of the search vectors ((n, 0) when the catalog has none)
    file_hashes: list[str]  # sha256 of each product's image file, computed here from the file
    metadata: list[dict]
    project: Callable[[np.ndarray], np.ndarray]  # a model vector (d,) to its shape vector (r,)


def whiten(model: np.ndarray, wanted: int) -> Callable[[np.ndarray], np.ndarray]:
    """The shrinkage whitening of the rule above, fitted on `model` (n, d), as a function of model vectors."""
    mean = model.mean(axis=0)
    covariance = (model - mean).T @ (model - mean) / len(model)
    variances, axes = np.linalg.eigh(covariance)
    top = np.argsort(variances)[::-1][:min(wanted, model.shape[1], len(model) - 1)]
    scale = np.sqrt(np.maximum(variances[top], 0) + SHRINKAGE * np.trace(covariance) / model.shape[1])
    matrix = axes[:, top] / scale

    def project(vectors: np.ndarray) -> np.ndarray:
        out = (np.asarray(vectors, np.float64) - mean) @ matrix
        return out / np.linalg.norm(out, axis=-1, keepdims=True)
    return project


def catalog_arrays(catalog) -> CatalogArrays:
    """Read a catalog (untuned) into plain arrays, its shape vectors whitened here from its model vectors."""
    assert catalog.tuning is None, "the brute-force reference handles catalogs without a tuning only"
    model = np.asarray(catalog.model_vectors, dtype=np.float64)
    unit = lambda v: np.asarray(v, np.float64)  # noqa: E731 - a catalog under MIN_PRODUCTS keeps the model's vectors
    project = whiten(model, load_settings().whiten_dim) if len(model) >= MIN_PRODUCTS else unit
    shape = project(model)
    search = np.asarray(catalog.vectors, dtype=np.float64)
    # The search vectors are [shape vector; colour vector]: the first part must be the shape vector found here.
    np.testing.assert_allclose(search[:, :shape.shape[1]], shape, atol=2e-4)
    colour = search[:, shape.shape[1]:]
    hashes = [hashlib.sha256(catalog.image_path_at(row).read_bytes()).hexdigest() for row in range(len(catalog))]
    metadata = [dict(catalog.metadata_at(row)) for row in range(len(catalog))]
    return CatalogArrays(list(catalog.ids), shape, colour, hashes, metadata, project)


def gains(weight: float) -> tuple[float, float]:
    """(the colour layout's gain, the whole product colour's gain) of a 0-1 colour weight, by the rule above."""
    return 1.25 * min(weight / 0.5, 1.0), 2.5 * max(weight - 0.5, 0.0) / 0.5


def scores(arrays: CatalogArrays, query_shape: np.ndarray, query_colour: np.ndarray | None,
           weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the score of every product for a query at colour weight `weight` (0-1), shape cosines, the gained colour
    part of the score), row by row."""
    shape = (arrays.shape * np.asarray(query_shape, np.float64)).sum(axis=1)
    if arrays.colour.shape[1] == 0 or query_colour is None:
        return shape, shape, np.zeros(len(arrays.ids))
    layout, whole = gains(weight)
    products = arrays.colour * np.asarray(query_colour, np.float64)
    colour = layout * products[:, :LAYOUT_DIM].sum(axis=1) + whole * products[:, LAYOUT_DIM:].sum(axis=1)
    return shape + colour, shape, colour


def pair_sample_scores(arrays: CatalogArrays, weight: float) -> np.ndarray:
    """The scores at `weight` of every pair of the sample of products the similarity figure is read against."""
    first: dict[str, int] = {}
    for row, digest in enumerate(arrays.file_hashes):
        first.setdefault(digest, row)
    rows = sorted(first[d] for d in heapq.nsmallest(400, first))
    out = []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            colour = arrays.colour[a] if arrays.colour.shape[1] else None
            single = CatalogArrays([arrays.ids[b]], arrays.shape[[b]], arrays.colour[[b]], [], [], arrays.project)
            out.append(scores(single, arrays.shape[a], colour, weight)[0][0])
    return np.sort(np.array(out))


def figure(pairs: np.ndarray, score: float, cosine: float) -> float:
    """The similarity shown for a score: the share of sample pairs scoring lower, ties counting half; with fewer than
    100 pairs, the cosine (clipped to 0-1)."""
    if len(pairs) < 100:
        return float(min(max(cosine, 0.0), 1.0))
    below = np.searchsorted(pairs, score - 1e-5, "left") + np.searchsorted(pairs, score + 1e-5, "right")
    return float(below / (2 * len(pairs)))


def shortlist(products: int, k: int) -> int:
    """How many products nearest in shape a colour query ranks, by the rule above."""
    return min(products, 100, max(20, math.ceil(0.03 * products)))


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
    total, shape, _ = scores(arrays, query_shape, query_colour, weight)
    rows = [row for row in range(len(arrays.ids)) if row not in excluded_rows and _meets(arrays.metadata[row], where)]
    if weight > 0 and arrays.colour.shape[1]:  # colour ranks the shape shortlist only, the rest in shape order
        by_shape = sorted(rows, key=lambda row: (-shape[row], row))
        size = shortlist(len(arrays.ids), k)
        rows = sorted(by_shape[:size], key=lambda row: (-total[row], row)) + by_shape[size:]
    else:
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
    pairs = pair_sample_scores(arrays, weight)
    layout, whole = gains(weight) if arrays.colour.shape[1] else (0.0, 0.0)
    exact = 1 + 0.8 * layout + 0.2 * whole  # what the same image scores: the colour vector is [sqrt .8 layout; sqrt .2 whole]
    return Ranked([arrays.ids[row] for row in chosen], [figure(pairs, total[row], total[row] / exact) for row in chosen])


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


def colour_queries(arrays: CatalogArrays, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """(every product's search vector [shape; colour], every product as a query at colour weight `weight`)."""
    layout, whole = gains(weight)
    colour = arrays.colour.copy()
    colour[:, :LAYOUT_DIM] *= layout
    colour[:, LAYOUT_DIM:] *= whole
    return np.concatenate([arrays.shape, arrays.colour], axis=1), np.concatenate([arrays.shape, colour], axis=1)


def leave_one_out_precision(vectors: np.ndarray, labels: list, queries: list[int] | np.ndarray, k: int,
                            query_vectors: np.ndarray | None = None,
                            excluded: dict[int, set[int]] | None = None,
                            shape: np.ndarray | None = None) -> tuple[float, list[float]]:
    """Micro precision@k and the precision@i curve (i = 1..n-1) of `queries` by exhaustive inner-product ranking.

    Each query row q, as `query_vectors[q]` (default: `vectors[q]`), is ranked against every other row of `vectors`
    (less `excluded[q]`), ties by row; a query is scored when it has a label and another candidate shares it. With
    `shape` (the rows' shape vectors: a colour query), the shortlist of the rule above comes first, the rest after.
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
        if shape is None:
            order = [candidates[i] for i in sorted(range(len(candidates)), key=lambda i: (-similarity[i], candidates[i]))]
        else:  # the shortlist by the query, then the others in shape order
            near = (shape[candidates] * shape[query]).sum(axis=1)
            by_shape = sorted(range(len(candidates)), key=lambda i: (-near[i], candidates[i]))
            size = shortlist(len(vectors), 1)
            ranked = sorted(by_shape[:size], key=lambda i: (-similarity[i], candidates[i])) + by_shape[size:]
            order = [candidates[i] for i in ranked]
        hits = np.cumsum([labels[row] == value for row in order])
        per_query.append(hits[k - 1] / k)
        curves.append(hits / np.arange(1, len(order) + 1))
    depth = min(len(c) for c in curves)
    return float(np.mean(per_query)), np.mean([c[:depth] for c in curves], axis=0).tolist()
