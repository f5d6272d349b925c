"""search/select.py: which backend serves a snapshot, and an HNSW file used only when it holds these very vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog import Catalog
from fashionrec.recommend import Recommender
from tests.conftest import copy_catalog


def test_a_swapped_hnsw_file_of_other_vectors_is_refused_and_rebuilt(copies_catalog: Path, tmp_path: Path,
                                                                     lite0) -> None:
    faiss = pytest.importorskip("faiss", reason="approximate search needs faiss (pip install -e '.[ann]')")
    copy_catalog(copies_catalog, tmp_path / "c")
    catalog = Catalog.open(tmp_path / "c")
    Recommender(catalog, lite0, search="hnsw")
    (graph,) = (tmp_path / "c" / "derived").glob("hnsw-*.faiss")
    # Another graph with as many vectors of the same length (what a swapped or restored-from-elsewhere file is),
    # written by FAISS itself under the current graph's name.
    other = np.random.default_rng(0).normal(size=catalog.vectors.shape).astype(np.float32)
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    swapped = faiss.IndexHNSWFlat(other.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    swapped.add(other)
    faiss.write_index(swapped, str(graph))

    served = Recommender(Catalog.open(tmp_path / "c"), lite0, search="hnsw")
    exact = Recommender(Catalog.open(tmp_path / "c"), lite0, search="exact")
    for product_id in catalog.ids[:10]:
        assert [m.id for m in served.by_id(product_id, k=5).results] == \
            [m.id for m in exact.by_id(product_id, k=5).results]
    rebuilt = faiss.read_index(str(graph))  # the swapped file was replaced by the graph of the catalog's vectors
    assert np.array_equal(rebuilt.reconstruct_n(0, rebuilt.ntotal), catalog.vectors)
