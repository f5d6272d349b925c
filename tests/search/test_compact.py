"""search/compact.py and its selection: the compact index (codes in RAM, floats on disk) answers as exact search
does where it searches every list, keeps filters whole, refuses damaged files, and serves live writes at once."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog import Catalog
from fashionrec.errors import FashionrecError
from fashionrec.index.write import ProductWrite, put_products, remove_products
from fashionrec.recommend import Recommender
from fashionrec.search.backend import Restriction
from fashionrec.search.compact import SQ4_MIN_ROWS, CompactIndex, PatchedIndex, codes_for
from fashionrec.search.exact import exact_search
from fashionrec.search.floats import FloatFile
from fashionrec.search.hnsw import idle_threads_sleep
from tests.conftest import copy_catalog, draw_product

faiss = pytest.importorskip("faiss", reason="approximate search needs faiss (pip install -e '.[ann]')")


def unit_rows(count: int, dim: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def structured_rows(count: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit rows near a 6-d subspace, as embeddings are (random Gaussian rows are the worst case for product codes)."""
    rng = np.random.default_rng(seed)
    rows = (rng.normal(size=(count, 6)) @ rng.normal(size=(6, dim)) + 0.3 * rng.normal(size=(count, dim)))
    rows = rows.astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def built(tmp_path: Path, vectors: np.ndarray, key: str = "k",
          codes: str | None = None) -> tuple[dict[str, Path], CompactIndex]:
    paths = {"codes": tmp_path / f"{key}.faiss", "floats": tmp_path / f"{key}.npy", "record": tmp_path / f"{key}.json"}
    blocks = (vectors[start:start + 300] for start in range(0, len(vectors), 300))  # built block by block
    made = CompactIndex.build(blocks, len(vectors), vectors.shape[1], paths, key, codes)  # hashed as written ...
    opened = CompactIndex.open(paths, key, len(vectors), vectors.shape[1], codes)  # ... which open() checks
    assert made.search(vectors[0], 5).positions.tolist() == opened.search(vectors[0], 5).positions.tolist()
    made.close()
    return paths, opened


def test_every_list_searched_gives_the_exact_answers_with_the_exact_floats(tmp_path: Path) -> None:
    vectors = unit_rows(1000, 24)
    _, index = built(tmp_path, vectors)
    index._index.nprobe = index._index.nlist  # every list: only the 8-bit codes' shortlist is approximate
    for query in vectors[:20] + 0.1 * unit_rows(20, 24, seed=1):
        found, want = index.search(query, 10), exact_search(vectors, query, 10)
        assert found.positions.tolist() == want.positions.tolist()
        np.testing.assert_allclose(found.distances, want.distances, atol=1e-5)
        assert np.array_equal(found.vectors, vectors[found.positions])  # the floats, read back bit for bit
    assert np.array_equal(index.vector(517), vectors[517])


def test_rows_read_in_any_order_and_runs(tmp_path: Path) -> None:
    """The floats are read a run of adjacent rows at a time, straight into the result: any order, repeats and runs
    come back as the file holds them."""
    vectors = unit_rows(700, 12)
    _, index = built(tmp_path, vectors)
    for positions in ([], [5], [699, 0], [3, 4, 5, 9, 4, 10, 11, 0], np.random.default_rng(2).integers(0, 700, 300)):
        wanted = np.asarray(positions, dtype=np.int64)
        assert np.array_equal(index.rows(wanted), vectors[wanted])


def test_rows_read_without_preadv_and_a_short_file_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Systems without `os.preadv` read with `os.pread` and a copy; a floats file cut short is an error, not zeros."""
    vectors = unit_rows(300, 8)
    paths, index = built(tmp_path, vectors)
    wanted = np.array([299, 3, 4, 5, 0])
    monkeypatch.delattr(os, "preadv")
    assert np.array_equal(index.rows(wanted), vectors[wanted])
    index.close()
    with open(paths["floats"], "r+b") as handle:
        handle.truncate(paths["floats"].stat().st_size - 10)
    cut = FloatFile(paths["floats"])
    with pytest.raises(FashionrecError, match="shorter"):
        cut.rows(np.array([0, 299]))
    cut.close()


def test_faiss_threads_sleep_when_idle_unless_told_otherwise() -> None:
    """The OpenMP policy is set before faiss first loads (`search.hnsw.faiss_module`), and a policy the environment
    gives is kept, with queries then scanned by one thread (spinning threads made a busy machine's p95 3x)."""
    script = ("import os, sys; from fashionrec.search.hnsw import faiss_module, idle_threads_sleep; faiss_module(); "
              "print(os.environ['OMP_WAIT_POLICY'], idle_threads_sleep())")
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    for given, shown in ((None, "PASSIVE True"), ("ACTIVE", "ACTIVE False")):
        run_env = env if given is None else {**env, "OMP_WAIT_POLICY": given}
        done = subprocess.run([sys.executable, "-c", script], env=run_env, capture_output=True, text=True, check=True)
        assert done.stdout.split() == shown.split()


def test_a_query_split_between_threads_by_list_answers_as_one_thread(tmp_path: Path) -> None:
    """Two or more FAISS threads scan a query's lists side by side (`parallel_mode` 1, docs/PERFORMANCE.md section
    10): the answers are those of one thread scanning them all."""
    vectors = structured_rows(3000, 32)
    _, index = built(tmp_path, vectors)
    threads = faiss.omp_get_max_threads()
    assert index._index.parallel_mode == (1 if threads > 1 and idle_threads_sleep() else 0)  # as opened here
    try:
        faiss.omp_set_num_threads(2)
        index._index.parallel_mode = 1
        split = [index.search(query, 10) for query in vectors[:30]]
        index._index.parallel_mode = 0
        faiss.omp_set_num_threads(1)
        whole = [index.search(query, 10) for query in vectors[:30]]
    finally:
        faiss.omp_set_num_threads(threads)
    for one, other in zip(split, whole):
        assert one.positions.tolist() == other.positions.tolist()
        assert np.array_equal(one.distances, other.distances)


@pytest.mark.parametrize("codes", ["sq4", "pq6"])
def test_coarser_codes_shortlist_as_well(tmp_path: Path, codes: str) -> None:
    """4-bit codes, what a catalog from `SQ4_MIN_ROWS` products holds; and product codes (a byte for 8 dimensions,
    45 padded to 48 here), measured against them (docs/PERFORMANCE.md section 10)."""
    assert codes_for(SQ4_MIN_ROWS - 1) == "sq8" and codes_for(SQ4_MIN_ROWS) == "sq4"
    vectors = structured_rows(3000, 45)
    paths, index = built(tmp_path, vectors, codes=codes)
    assert (index._index.code_size, index._index.d) == ({"sq4": 23, "pq6": 6}[codes], {"sq4": 45, "pq6": 48}[codes])
    index._index.nprobe = index._index.nlist
    for query in vectors[:40]:
        found, want = index.search(query, 10), exact_search(vectors, query, 10)
        assert found.positions.tolist() == want.positions.tolist()
        np.testing.assert_allclose(found.distances, want.distances, atol=1e-5)
    allowed = np.arange(len(vectors)) % 7 == 0  # a filter: the padded query through the selector
    found = index.search(vectors[5], 5, Restriction(mask=allowed))
    assert found.positions.tolist() == exact_search(vectors, vectors[5], 5, allowed).positions.tolist()
    with pytest.raises(FashionrecError, match="kind differ"):  # the same vectors under other codes: another index
        CompactIndex.open(paths, "k", len(vectors), 45, codes="sq8")


def test_a_selective_filter_still_gets_every_allowed_row_it_asks_for(tmp_path: Path) -> None:
    vectors = unit_rows(2000, 16)
    _, index = built(tmp_path, vectors)
    allowed = np.zeros(len(vectors), bool)
    allowed[np.random.default_rng(3).choice(len(vectors), 6, replace=False)] = True  # far from the query's lists
    found = index.search(vectors[0], 5, Restriction(mask=allowed))
    assert found.positions.tolist() == exact_search(vectors, vectors[0], 5, allowed).positions.tolist()
    assert len(index.search(vectors[0], 50, Restriction(mask=allowed)).positions) == 6
    assert len(index.search(vectors[0], 5, Restriction(mask=np.zeros(len(vectors), bool))).positions) == 0


@pytest.mark.parametrize("damage", ["floats", "codes", "record", "not a record"])
def test_a_damaged_or_swapped_index_is_refused(tmp_path: Path, damage: str) -> None:
    vectors = unit_rows(500, 16)
    paths, _ = built(tmp_path, vectors)
    if damage == "not a record":  # valid JSON, not an object: refused (it stopped the server), so built again
        paths["record"].write_text("[1]")
        with pytest.raises(FashionrecError, match="cannot be read"):
            CompactIndex.open(paths, "k", 500, 16)
        return
    if damage == "record":  # the index of other vectors under this name
        built(tmp_path / "other", unit_rows(500, 16, seed=9), key="k")
        for name in ("codes", "floats", "record"):
            shutil.copy(tmp_path / "other" / paths[name].name, paths[name])
        with pytest.raises(FashionrecError, match="does not hold these vectors"):
            CompactIndex.open(paths, "another key", 500, 16)
        return
    data = bytearray(paths[damage].read_bytes())
    data[len(data) // 2] ^= 0xFF
    paths[damage].write_bytes(bytes(data))
    with pytest.raises(FashionrecError, match="does not hold these vectors"):
        CompactIndex.open(paths, "k", 500, 16)


def test_the_compact_search_serves_a_catalog_and_its_live_writes(copies_catalog: Path, tmp_path: Path,
                                                                 lite0) -> None:
    copy_catalog(copies_catalog, tmp_path / "c")
    catalog = Catalog.open(tmp_path / "c")
    compact = Recommender(catalog, lite0, search="ivf")
    assert compact.search_in_use == "ivf" and not catalog.vectors_loaded  # the floats stay on disk
    exact = Recommender(Catalog.open(tmp_path / "c"), lite0, search="exact")
    assert sorted(p.suffix for p in (tmp_path / "c" / "derived").glob("ivf-*")) == [".faiss", ".json", ".npy"]
    assert len(catalog) < 64  # at most 16 lists, all searched: the exact answers
    for weight in (0.0, 1.0):
        for product_id in ("1", "17", "30"):
            for where in (None, {"gender": "Men"}):
                assert ([m.id for m in compact.by_id(product_id, k=6, where=where, colour_weight=weight).results]
                        == [m.id for m in exact.by_id(product_id, k=6, where=where, colour_weight=weight).results])
    photo = io.BytesIO()
    draw_product(500).save(photo, "PNG")
    put_products(tmp_path / "c", [ProductWrite("500", photo.getvalue())], lite0)
    remove_products(tmp_path / "c", ["7"])
    assert compact.refresh() is True
    # Searchable at once: the earlier index, patched with what changed, until this snapshot's own is built.
    assert compact.by_image(photo.getvalue(), k=1).results[0].id == "500"
    assert all(m.id != "7" for m in compact.by_id("8", k=30).results)
    deadline = time.monotonic() + 60
    while isinstance(compact._backend, PatchedIndex) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert isinstance(compact._backend, CompactIndex)
    reference = Recommender(Catalog.open(tmp_path / "c"), lite0, search="exact")
    for product_id in ("500", "8", "30"):
        assert ([m.id for m in compact.by_id(product_id, k=6).results]
                == [m.id for m in reference.by_id(product_id, k=6).results])
    names = sorted(p.name for p in (tmp_path / "c" / "derived").glob("ivf-*"))
    assert len(names) == 3 and compact.catalog.keys.search in names[0]  # the earlier index was removed
    compact.close()


@pytest.mark.parametrize("show_duplicates", [False, True])
def test_similar_all_through_the_index_gives_the_blocked_exact_table(copies_catalog: Path, tmp_path: Path,
                                                                       show_duplicates: bool) -> None:
    """The large-catalog path of similar-all (one indexed query a product) answers as the exact blocked path."""
    from fashionrec.recommend.similar_all import similar_all

    copy_catalog(copies_catalog, tmp_path / "c")
    catalog = Catalog.open(tmp_path / "c")
    for weight in (0.0, 1.0):
        told: list[int] = []
        indexed = similar_all(catalog, k=7, show_duplicates=show_duplicates, colour_weight=weight,
                              progress=told.append, search="ivf")
        exact = similar_all(Catalog.open(tmp_path / "c"), k=7, show_duplicates=show_duplicates,
                            colour_weight=weight, search="exact")
        assert indexed.similar == exact.similar and sum(told) == len(catalog)
        for got, want in zip(indexed.similarities, exact.similarities):
            assert got == pytest.approx(want, abs=1e-5)


def test_a_one_product_catalog_and_a_refit_are_served_right(tmp_path: Path, lite0) -> None:
    """Review of issue 24: one product made a raw faiss error (two lists for one vector); a refresh across a change
    of search space (here the first whitening) was patched over an index of the old space."""
    from dataclasses import replace as with_fields

    from fashionrec.config import load_settings
    from fashionrec.index.run import index_images
    from tests.conftest import write_products

    write_products(tmp_path / "one", [1])
    index_images(tmp_path / "one", tmp_path / "c1", model="efficientnet-lite0", progress=False)
    single = Recommender(Catalog.open(tmp_path / "c1"), lite0, search="ivf")
    assert single.by_id("1", k=3).results == [] and single.search_in_use == "ivf"

    settings = with_fields(load_settings(), whiten_dim=8)
    write_products(tmp_path / "images", range(1, 61))  # 60 products: raw vectors
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False, settings=settings)
    served = Recommender(Catalog.open(tmp_path / "c"), lite0, settings=settings, search="ivf")
    write_products(tmp_path / "images", range(61, 111))  # 110: whitened, another search space
    index_images(tmp_path / "images", tmp_path / "c", progress=False, settings=settings)
    assert served.refresh() is True
    assert not isinstance(served._backend, PatchedIndex)  # never patched across spaces: exact until built
    reference = Recommender(Catalog.open(tmp_path / "c"), lite0, settings=settings, search="exact")
    for product_id in ("3", "70", "110"):
        assert ([m.id for m in served.by_id(product_id, k=5).results]
                == [m.id for m in reference.by_id(product_id, k=5).results])
    deadline = time.monotonic() + 60
    while not isinstance(served._backend, CompactIndex) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert isinstance(served._backend, CompactIndex)
    # Review of issue 24: the exact stand-in's floats were cached on the catalog and kept for good (2 GB at 1M).
    assert not served.catalog.vectors_loaded
    assert [m.id for m in served.by_id("70", k=5).results] == [m.id for m in reference.by_id("70", k=5).results]
    served.close()


def test_a_served_snapshot_answers_after_the_catalog_moved_on(copies_catalog: Path, tmp_path: Path, lite0) -> None:
    """Review of issue 24: the figure's pair sample was read from the database at the first query, which refused
    once the catalog had moved on; the compact index's floats are this snapshot's own."""
    copy_catalog(copies_catalog, tmp_path / "c")
    compact = Recommender(Catalog.open(tmp_path / "c"), lite0, search="ivf")
    photo = io.BytesIO()
    draw_product(700).save(photo, "PNG")
    put_products(tmp_path / "c", [ProductWrite("700", photo.getvalue())], lite0)  # before the first query
    assert len(compact.by_id("8", k=5).results) == 5
    compact.close()


def test_leaving_out_the_query_product_answers_as_the_mask_does(tmp_path: Path) -> None:
    """"More like this" (no filter, the product itself left out) skips the selector over the whole catalog: the
    same answers as the mask that says so."""
    vectors = unit_rows(3000, 16)
    _, index = built(tmp_path, vectors)
    for row in (0, 1234, 2999):
        mask = np.ones(len(vectors), bool)
        mask[row] = False
        quick = index.search(vectors[row], 10, Restriction(mask=mask, exclude=(row,)))
        masked = index.search(vectors[row], 10, Restriction(mask=mask))  # no `exclude`: the selector path
        assert quick.positions.tolist() == masked.positions.tolist() and row not in quick.positions
        np.testing.assert_array_equal(quick.distances, masked.distances)
    tiny = unit_rows(3, 8)
    _, small = built(tmp_path / "s", tiny)
    only_others = small.search(tiny[0], 5, Restriction(mask=np.array([False, True, True]), exclude=(0,)))
    assert sorted(only_others.positions.tolist()) == [1, 2]


def _photo(seed: int) -> bytes:
    photo = io.BytesIO()
    draw_product(seed).save(photo, "PNG")
    return photo.getvalue()


def test_a_metadata_change_keeps_the_open_index_and_a_build_overtaken_by_writes_moves_the_patch_on(
        copies_catalog: Path, tmp_path: Path, lite0, monkeypatch) -> None:
    """Review of issue 24: a metadata-only write reopened (and hashed) the same index; and an index finished for a
    snapshot the catalog had moved past was dropped, so a catalog written faster than an index builds piled every
    write onto the first patch. Now the open index goes on serving, and a finished index serves the newest snapshot
    patched with what changed since it, while the newest's own is built."""
    import threading

    import fashionrec.recommend.recommender as recommender_module
    from fashionrec.search.select import open_ivf

    copy_catalog(copies_catalog, tmp_path / "c")
    compact = Recommender(Catalog.open(tmp_path / "c"), lite0, search="ivf")
    index = compact._backend
    put_products(tmp_path / "c", [ProductWrite("8", Catalog.open(tmp_path / "c").image_path_at(
        Catalog.open(tmp_path / "c").position("8")).read_bytes(), {"gender": "Women"})], lite0)
    assert compact.refresh() is True and compact._backend is index  # same photo, new metadata: the same index

    gates, built = [threading.Event(), threading.Event()], []

    def held_build(catalog, stand_in):  # each of the first two builds waits for its gate
        gate = gates[len(built)] if len(built) < len(gates) else None
        built.append(catalog.generation)
        if gate is not None:
            gate.wait(60)
        return open_ivf(catalog, stand_in)

    def wait_for(condition) -> None:
        deadline = time.monotonic() + 60
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert condition()

    monkeypatch.setattr(recommender_module, "open_ivf", held_build)
    put_products(tmp_path / "c", [ProductWrite("600", _photo(600))], lite0)
    assert compact.refresh() is True
    first = compact.catalog.generation
    put_products(tmp_path / "c", [ProductWrite("601", _photo(601))], lite0)
    assert compact.refresh() is True and isinstance(compact._backend, PatchedIndex)
    assert compact._backend.base_catalog.generation < first  # both writes patched onto the index before them
    gates[0].set()  # the first build ends after the catalog moved on: it serves the newest, patched with "601"
    wait_for(lambda: getattr(compact._backend, "base_catalog", compact.catalog).generation == first)
    wait_for(lambda: len(built) == 2)  # then the newest's own build begins
    assert built == [first, compact.catalog.generation] and isinstance(compact._backend, PatchedIndex)
    assert compact.by_image(_photo(601), k=1).results[0].id == "601"
    gates[1].set()
    wait_for(lambda: isinstance(compact._backend, CompactIndex))
    reference = Recommender(Catalog.open(tmp_path / "c"), lite0, search="exact")
    for product_id in ("600", "601", "8"):
        assert ([m.id for m in compact.by_id(product_id, k=6).results]
                == [m.id for m in reference.by_id(product_id, k=6).results])
    compact.close()


def test_an_index_built_for_a_closed_recommender_is_closed_not_left_to_the_collector(
        copies_catalog: Path, tmp_path: Path, lite0, monkeypatch) -> None:
    """Issue 24: a build that ended after close() dropped its index unclosed (its floats file open until collected)."""
    import threading

    import fashionrec.recommend.recommender as recommender_module
    from fashionrec.search.select import open_ivf

    copy_catalog(copies_catalog, tmp_path / "c")
    compact = Recommender(Catalog.open(tmp_path / "c"), lite0, search="ivf")
    entered, gate, built, closed = threading.Event(), threading.Event(), [], []

    def held_build(catalog, stand_in):
        entered.set()
        gate.wait(60)
        index = open_ivf(catalog, stand_in)
        real_close = index.close
        index.close = lambda: (closed.append(index), real_close())
        built.append(index)
        return index

    monkeypatch.setattr(recommender_module, "open_ivf", held_build)
    put_products(tmp_path / "c", [ProductWrite("600", _photo(600))], lite0)
    assert compact.refresh() is True and isinstance(compact._backend, PatchedIndex)
    assert entered.wait(60)  # the build is under way ...
    compact.close()  # ... when the recommender is closed
    gate.set()
    deadline = time.monotonic() + 60
    while compact._building and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(built) == 1 and closed == built and isinstance(compact._backend, PatchedIndex)  # nothing swapped in


def test_an_exact_stand_in_is_carried_on_across_writes_until_the_index_is_built(tmp_path: Path, lite0,
                                                                                 monkeypatch) -> None:
    """Review of issue 24: while a new search space's index builds, each write read every float again into a new
    exact stand-in; it is now carried on from the one serving (unchanged rows kept, the changed read), the catalog
    never holding the floats, and the index then built from it."""
    import threading
    from dataclasses import replace as with_fields

    import fashionrec.recommend.recommender as recommender_module
    from fashionrec.config import load_settings
    from fashionrec.index.run import index_images
    from fashionrec.search.exact import ExactIndex
    from fashionrec.search.select import open_ivf
    from tests.conftest import write_products

    settings = with_fields(load_settings(), whiten_dim=8)
    write_products(tmp_path / "images", range(1, 61))  # 60 products: raw vectors
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False, settings=settings)
    served = Recommender(Catalog.open(tmp_path / "c"), lite0, settings=settings, search="ivf")
    gate = threading.Event()

    def held_build(catalog, stand_in):
        gate.wait(60)
        return open_ivf(catalog, stand_in)

    monkeypatch.setattr(recommender_module, "open_ivf", held_build)
    write_products(tmp_path / "images", range(61, 111))  # 110: whitened, another search space
    index_images(tmp_path / "images", tmp_path / "c", progress=False, settings=settings)
    assert served.refresh() is True
    first = served._backend
    assert isinstance(first, ExactIndex)

    def read_in_full(self, rows=65_536):
        raise AssertionError("every float read again")

    monkeypatch.setattr(Catalog, "vector_blocks", read_in_full)  # from here on: the stand-in's rows, or nothing
    put_products(tmp_path / "c", [ProductWrite("900", _photo(900))], lite0)
    remove_products(tmp_path / "c", ["5"])
    assert served.refresh() is True
    assert isinstance(served._backend, ExactIndex) and served._backend is not first
    assert not served.catalog.vectors_loaded
    reference = Recommender(Catalog.open(tmp_path / "c"), lite0, settings=settings, search="exact")
    for product_id in ("3", "70", "900"):
        assert ([m.id for m in served.by_id(product_id, k=5).results]
                == [m.id for m in reference.by_id(product_id, k=5).results])
    gate.set()
    deadline = time.monotonic() + 60
    while not isinstance(served._backend, CompactIndex) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert isinstance(served._backend, CompactIndex) and served.catalog.generation == reference.catalog.generation
    assert ([m.id for m in served.by_id("900", k=5).results] == [m.id for m in reference.by_id("900", k=5).results])
    served.close()


def test_a_server_at_an_older_snapshot_never_removes_the_newer_snapshots_index(copies_catalog: Path,
                                                                               tmp_path: Path, lite0) -> None:
    """Issue 24: a build finished at an older snapshot removed the index of the catalog's latest one, which the next
    server opening the catalog built again (and removed the older's), in turn. An older snapshot leaves what was
    published since it was read; what is older than that goes, so builds overtaken by steady writes pile nothing up."""
    import os

    from fashionrec.search.select import exact_stand_in, open_ivf

    def write(product: int) -> None:
        photo = io.BytesIO()
        draw_product(product).save(photo, "PNG")
        put_products(tmp_path / "c", [ProductWrite(str(product), photo.getvalue())], lite0)

    def files() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in (tmp_path / "c" / "derived").glob("ivf-*")}

    def age(names) -> None:  # as if published long before (file times are coarse: the test does not wait)
        for name in names:
            os.utime(tmp_path / "c" / "derived" / name, (1, 1))

    copy_catalog(copies_catalog, tmp_path / "c")
    first = Catalog.open(tmp_path / "c")
    first_stand_in = exact_stand_in(first)  # the older snapshot's floats, as its server holds them
    write(701)
    second = Catalog.open(tmp_path / "c")
    open_ivf(second)
    newest = files()
    open_ivf(first, first_stand_in)  # the older server's build finishes after the newer's
    assert set(newest) < set(files()) and len(files()) == 6  # the newer snapshot's index stays
    open_ivf(Catalog.open(tmp_path / "c"))  # the next server at the latest generation: opens it, removes the older
    assert files() == newest

    # Steady writes: each build ends a generation late, and still removes what came before its snapshot.
    age(newest)
    second = Catalog.open(tmp_path / "c")
    second_stand_in = exact_stand_in(second)
    write(702)
    open_ivf(second, second_stand_in)  # at an older generation now: its own file stays ...
    assert set(files()) == set(newest)
    third = Catalog.open(tmp_path / "c")
    third_stand_in = exact_stand_in(third)
    write(703)
    open_ivf(third, third_stand_in)  # ... and the next one, overtaken too, removes the one before it
    assert not set(newest) & set(files()) and len(files()) == 3, sorted(files())


@pytest.mark.parametrize("limit", [256, 2])
def test_a_patched_index_answers_as_exact_search_with_and_without_filters(tmp_path: Path, limit: int,
                                                                         monkeypatch) -> None:
    """Issue 24: without filters a patched index leaves its gone rows out of the base as a list (no catalog-sized
    mask a query), through a mask when many are gone (`limit` 2); the answers are exact search's either way."""
    from fashionrec.search import compact

    monkeypatch.setattr(compact, "EXCLUDE_LIMIT", limit)
    base_vectors = unit_rows(600, 16)
    _, base = built(tmp_path, base_vectors)
    base._index.nprobe = base._index.nlist  # every list searched: exact answers expected
    kept = np.array([row for row in range(600) if row not in (3, 10, 20)])  # 3 and 10 removed, 20 replaced
    fresh = unit_rows(6, 16, seed=5)  # product 20's new vector and 5 new products, at the end
    vectors = np.concatenate([base_vectors[kept], fresh])
    base_rows = np.concatenate([kept, np.full(6, -1)])
    fresh_rows = np.arange(len(kept), len(vectors))
    patched = PatchedIndex(base, None, base_rows, fresh_rows, fresh)
    labels = np.random.default_rng(1).integers(0, 3, len(vectors))
    for query_row in (0, 5, len(vectors) - 1):
        query = vectors[query_row]
        more_like = np.ones(len(vectors), bool)
        more_like[query_row] = False
        filtered = more_like & (labels == 1)
        cases = [(None, None), (Restriction(mask=more_like, exclude=(query_row,)), more_like),
                 (Restriction(exclude=(query_row,)), more_like),
                 (Restriction(mask=filtered, where={"kind": ("1",)}, exclude=(query_row,)), filtered)]
        for restriction, mask in cases:
            found, want = patched.search(query, 8, restriction), exact_search(vectors, query, 8, mask)
            assert found.positions.tolist() == want.positions.tolist(), restriction
            assert np.array_equal(found.vectors, vectors[found.positions])
