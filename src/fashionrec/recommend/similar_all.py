""""More like this" for every product at once: what a storefront precomputes for its product pages."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from fashionrec.catalog.catalog import Catalog
from fashionrec.config import Settings, load_settings
from fashionrec.recommend.answers import catalog_pair_scores, sample_positions
from fashionrec.recommend.query import check_k, colour_gain, colour_ranking
from fashionrec.recommend.recommender import open_search
from fashionrec.recommend.view import View
from fashionrec.search.backend import SearchBackend
from fashionrec.search.block import block_neighbours
from fashionrec.search.dedupe import distinct_rows
from fashionrec.search.select import search_kind


@dataclass(frozen=True)
class SimilarTable:
    """For every product, its k most similar products: what a storefront precomputes for product pages."""

    ids: list[str]  # the catalog's products, row by row
    similar: list[list[str]]  # similar[i]: ids most like ids[i], nearest first (fewer than k in tiny catalogs,
    # or when more than k + 8 of a product's neighbours are duplicates of one another)
    similarities: list[list[float]]  # `Match.similarity` of each, aligned with `similar`

    def rows(self) -> Iterable[tuple[str, int, str, float]]:
        """(product id, rank from 1, similar product id, similarity), product by product."""
        for product_id, similar, similarities in zip(self.ids, self.similar, self.similarities):
            for rank, (other, similarity) in enumerate(zip(similar, similarities), start=1):
                yield product_id, rank, other, similarity


def similar_all(catalog: Catalog, k: int = 10, show_duplicates: bool = False,
                settings: Settings | None = None, colour_weight: float | None = None,
                progress: Callable[[int], None] | None = None, search: str | None = None) -> SimilarTable:
    """"More like this" for every product at once: by blocked matrix products over the whole catalog (exact), or
    one indexed query a product for a large catalog.

    Same answers as `Recommender.by_id` for each product (never itself; one product per duplicate group unless
    `show_duplicates`; `colour_weight` as there), without loading a model. k is bounded as every query's is
    (`FASHIONREC_MAX_K`, 100 by default); `progress` is told how many products each block answered.

    `search` (default auto; `search.select`): exact search's time grows with the square of the catalog (the
    7,254-product sample at k 100: 34 s of search, 414 MB peak, `fashionrec similar-all -k 100`, 2 cores), so from
    `FASHIONREC_ANN_THRESHOLD` products (200,000) auto asks the approximate index (ivf) once a product instead. Each
    such query still builds a mask over the catalog (the product itself left out), so its time grows a little with
    the catalog too: far below the exact path's.

    Example:
        >>> table = similar_all(Catalog.open("my-catalog"), k=10)
        >>> table.similar[0][:3]
        ['39386', '21379', '11016']
    """
    settings = settings or load_settings()
    check_k(k, settings.max_k)  # the bound of every query: memory and time grow with k x the catalog
    if search_kind(catalog, search or "auto", settings) != "exact":  # only what it is asked, or auto: never the
        # server's search setting (a Milvus address there would get one query a product)
        return _by_index(catalog, open_search(catalog, search or "auto", settings), k, show_duplicates, settings,
                         colour_weight, progress)
    _, gain = colour_gain(colour_weight, settings, catalog.has_colour, products=len(catalog))
    vectors, hashes = catalog.vectors, catalog.content_hashes
    count = len(catalog)
    depth = min(count - 1, k if show_duplicates else 2 * k + 8)
    if depth < 1:
        return SimilarTable(list(catalog.ids), [[] for _ in range(count)], [[] for _ in range(count)])
    as_query, shortlist = colour_ranking(catalog, gain)
    found = block_neighbours(vectors, np.arange(count), depth, as_query=as_query, shortlist=shortlist,
                             progress=progress)
    pairs = catalog_pair_scores(catalog.shape_part, catalog.colour_dim,
                                vectors[sample_positions(catalog.content_hashes)])
    cosine = settings.duplicate_cosine if catalog.whitening else np.inf
    looks = catalog.look_part(vectors) if np.isfinite(cosine) else vectors  # near copies: the untuned part
    similar, similarities = [], []
    for row in range(count):
        keep = (np.arange(min(k, depth)) if show_duplicates else
                distinct_rows(found.positions[row], hashes, looks, k, cosine, seen_hashes=[hashes[row]],
                              seen_vectors=looks[row]))
        chosen = found.positions[row, keep]
        similar.append([catalog.ids[p] for p in chosen.tolist()])
        similarities.append(pairs.figures(vectors[chosen] @ catalog.query_vector(vectors[row], gain.weights),
                                          gain).tolist())
    return SimilarTable(list(catalog.ids), similar, similarities)


def _by_index(catalog: Catalog, backend: SearchBackend, k: int, show_duplicates: bool, settings: Settings,
              colour_weight: float | None, progress: Callable[[int], None] | None, block: int = 100) -> SimilarTable:
    """`similar_all` by one query a product through a search index (the large-catalog path): exactly what
    `Recommender.by_id` answers, since it is the same view."""
    view = View(catalog, None, backend, settings, match_queries=False)  # by_id never runs the model
    similar, similarities = [], []
    try:
        for start in range(0, len(catalog), block):
            for product_id in catalog.ids[start:start + block]:
                found = view.by_id(product_id, k, show_duplicates=show_duplicates, colour_weight=colour_weight)
                similar.append([match.id for match in found.results])
                similarities.append([match.similarity for match in found.results])
            if progress is not None:
                progress(min(block, len(catalog) - start))
    finally:
        getattr(backend, "close", lambda: None)()
    return SimilarTable(list(catalog.ids), similar, similarities)
