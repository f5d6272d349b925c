"""quality/evaluate.py and quality/report.py: metrics checked by hand and against brute force, duplicates, photos,
the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec.catalog.catalog import Catalog
from fashionrec.cli import main
from fashionrec.config import load_settings
from fashionrec.errors import FashionrecError
from fashionrec.quality.evaluate import evaluate, photo_recall, score_label
from fashionrec.search.block import top_neighbours
from fashionrec.recommend.recommender import Recommender


def unit_rows(count: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_top_neighbours_equal_brute_force_and_honour_exclusions() -> None:
    vectors = unit_rows(300, 16, seed=1)
    positions = np.array([0, 5, 299, 150])
    found = top_neighbours(vectors, positions, depth=10, exclude=lambda q: [q, (q + 1) % 300])
    for row, query in enumerate(positions):
        distances = np.linalg.norm(vectors - vectors[query], axis=1)
        distances[[query, (query + 1) % 300]] = np.inf
        assert found[row].tolist() == np.argsort(distances, kind="stable")[:10].tolist()


def test_precision_and_average_precision_by_hand() -> None:
    values = np.array(["A", "A", "B", "B", "A", None], dtype=object)
    neighbours = np.array([[1, 2, 4, 3], [5, 0, 3, 4], [0, 1, 4, 3], [0, 1, 2, 4]])
    scores = score_label("label", values, np.array([0, 1, 2, 3]), neighbours, k=2, groups={})
    # query 0 (A): relevant [1, 0] -> P@2 0.5, AP@2 = (1/1)/min(2, 2) = 0.5
    # query 1 (A): relevant [0, 1] -> P@2 0.5, AP@2 = (1/2)/2 = 0.25
    # query 2 (B): relevant [0, 0] -> 0, 0;  query 3 (B): relevant [0, 0] -> 0, 0
    assert scores.queries == 4 and scores.unscored == 0
    assert scores.precision == pytest.approx(0.25) and scores.map == pytest.approx(0.1875)
    assert scores.precision_macro == pytest.approx((0.5 + 0.0) / 2) and scores.map_macro == pytest.approx(0.375 / 2)
    assert scores.precision_curve == pytest.approx([0.25, 0.25, 1 / 3, 0.375])
    assert [(c.value, c.queries) for c in scores.classes] == [("B", 2), ("A", 2)]  # weakest first


def test_a_query_alone_in_its_class_or_without_a_label_is_not_scored() -> None:
    values = np.array(["A", "A", "C", None], dtype=object)
    neighbours = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    scores = score_label("label", values, np.arange(4), neighbours, k=1, groups={})
    assert scores.queries == 2 and scores.unscored == 2 and scores.precision == 1.0 and scores.map == 1.0


def test_label_aligned_vectors_score_one_and_copies_are_grouped(copies_catalog: Path) -> None:
    catalog = Catalog.open(copies_catalog)
    types = catalog.column_values("articleType")
    directions = {value: unit_rows(1, 32, seed=index)[0] for index, value in enumerate(sorted(set(types)))}
    perfect = np.stack([directions[t] for t in types]) + 0.01 * unit_rows(len(catalog), 32, seed=9)
    perfect /= np.linalg.norm(perfect, axis=1, keepdims=True)
    result = evaluate(catalog, ["articleType", "gender"], k=5, vectors=perfect)
    assert result.products == 43 and result.duplicate_groups == 2
    assert result.labels[0].precision == 1.0 and result.labels[0].map == 1.0
    assert result.deduplicated[0].precision == 1.0
    assert 0.3 < result.labels[1].precision < 0.8  # gender is unrelated to these vectors


def test_copies_are_free_hits_that_the_deduplicated_scores_leave_out(copies_catalog: Path) -> None:
    catalog = Catalog.open(copies_catalog)
    result = evaluate(catalog, ["productDisplayName"], k=1)
    # Only the copies share a display name with another product, and a copy is always the nearest.
    assert result.labels[0].queries == 5 and result.labels[0].precision == 1.0
    assert result.deduplicated[0].queries == 0


def test_a_seeded_sample_of_queries(copies_catalog: Path) -> None:
    catalog = Catalog.open(copies_catalog)
    first, again = (evaluate(catalog, ["articleType"], queries=10, seed=3) for _ in range(2))
    assert first.queries == 10 and first == again


@pytest.mark.parametrize("kwargs, message", [({"labels": ["colour"]}, "no column colour"), ({"k": 0}, "at least 1"),
                                             ({"queries": 0}, "at least 1")])
def test_bad_requests_are_refused(copies_catalog: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(FashionrecError, match=message):
        evaluate(Catalog.open(copies_catalog), **kwargs)


def test_photo_recall(copies_catalog: Path, tmp_path: Path, lite0) -> None:
    catalog = Catalog.open(copies_catalog)
    for product_id in ("5", "17"):
        shutil.copy(catalog.image_path(product_id), tmp_path / f"{product_id}.jpg")
    Image.new("RGB", (60, 80), "red").save(tmp_path / "999.jpg")
    recall = photo_recall(Recommender(catalog, lite0), tmp_path)
    assert recall.photos == 2 and recall.not_in_catalog == 1 and recall.ranks == {"5": 1, "17": 1}
    assert recall.recall_at_1 == 1.0 and recall.recall_at_5 == 1.0
    with pytest.raises(FashionrecError, match="no photos"):
        photo_recall(Recommender(catalog, lite0), tmp_path / "empty")


def brute_force(catalog: Catalog, label: str, k: int, weight: float,
                without_copies: bool = False) -> tuple[float, list[float]]:
    """Leave-one-out (P@k, precision curve) of every product by exhaustive ranking (tests/reference.py): the query
    [shape; gains x colour] at colour weight `weight` against the others' [shape; colour], within the shape
    shortlist; `without_copies` also leaves out products whose image file has the query's content (hashed here from
    the files)."""
    from tests.reference import catalog_arrays, colour_queries, leave_one_out_precision

    arrays = catalog_arrays(catalog)
    candidates, queries = colour_queries(arrays, weight)
    hashes = arrays.file_hashes
    excluded = ({q: {r for r, h in enumerate(hashes) if h == hashes[q]} for q in range(len(hashes))}
                if without_copies else None)
    return leave_one_out_precision(candidates, [m.get(label) for m in arrays.metadata], range(len(hashes)), k,
                                   query_vectors=queries, excluded=excluded, shape=arrays.shape if weight else None)


def test_cli_json_and_report(copies_catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("matplotlib", reason="the report needs matplotlib (pip install -e '.[report]')")
    code = main(["evaluate", "--catalog", str(copies_catalog), "--label", "articleType", "--label", "baseColour",
                 "-k", "3", "--json", "--report", str(tmp_path / "report")])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["k"] == 3 and [s["label"] for s in data["labels"]] == ["articleType", "baseColour"]
    assert data["products"] == data["queries"] == 43 and data["duplicate_groups"] == 2  # {1, 101}, {2, 102, 103}
    assert len(data["labels"][0]["precision_curve"]) == 20
    catalog = Catalog.open(copies_catalog)
    raw = load_settings().colour_weight  # the CLI's default colour weight
    rows = []
    for scores, deduplicated in zip(data["labels"], data["deduplicated"]):
        precision, curve = brute_force(catalog, scores["label"], 3, raw)
        assert scores["queries"] == 43 and scores["precision"] == pytest.approx(precision, abs=1e-9)
        assert scores["precision_curve"] == pytest.approx(curve[:20], abs=1e-9)
        assert deduplicated["precision"] == pytest.approx(brute_force(catalog, scores["label"], 3, raw, True)[0],
                                                          abs=1e-9)
        rows.append(f"| {scores['label']} | 43 | {precision:.4f} |")
    text = (tmp_path / "report" / "report.md").read_text()
    assert all(row in text for row in rows), rows  # the report's table carries the same figures
    for name in ("precision_at_k.png", "worst_classes.png", "examples.png"):
        assert name in text
        with Image.open(tmp_path / "report" / name) as plot:
            assert plot.format == "PNG" and plot.width > 300


def test_cli_evaluates_any_point_of_the_colour_curve(copies_catalog: Path, capsys: pytest.CaptureFixture) -> None:
    """`evaluate --colour-weight W --json` scores the ranking the faces give at W, checked against an exhaustive
    ranking at that weight (tests/reference.py)."""
    catalog = Catalog.open(copies_catalog)
    for weight, raw in ((0.0, 0.0), (1.0, 1.0)):
        assert main(["evaluate", "--catalog", str(copies_catalog), "--label", "baseColour", "-k", "3",
                     "--colour-weight", str(weight), "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        precision, curve = brute_force(catalog, "baseColour", 3, raw)
        assert data["colour_weight"] == weight and data["labels"][0]["precision"] == pytest.approx(precision, abs=1e-9)
        assert data["labels"][0]["precision_curve"] == pytest.approx(curve[:20], abs=1e-9)
    shape, full = (brute_force(catalog, "baseColour", 3, w)[1] for w in (0.0, 0.6))
    assert shape != full  # the colour changes the ranking
    # evaluate takes the 0-1 weight every face takes
    assert [evaluate(catalog, ["baseColour"], k=3, colour_weight=w).labels[0].precision_curve for w in (0.0, 0.6)] \
        == [pytest.approx(shape[:20], abs=1e-9), pytest.approx(full[:20], abs=1e-9)]


def test_cli_table_and_errors(copies_catalog: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", "--catalog", str(copies_catalog)]) == 0
    out = capsys.readouterr().out
    assert "leave-one-out over 43 of 43 products (2 groups of exact-duplicate images)" in out
    assert out.splitlines()[1].split()[:3] == ["label", "queries", "P@5"]
    assert main(["evaluate", "--catalog", str(copies_catalog), "--label", "colour"]) == 2
    assert "no column colour" in capsys.readouterr().err


@pytest.mark.parametrize("k", [41, 43, 100])
def test_a_k_past_the_candidates_is_refused_with_the_largest_k(copies_catalog: Path, k: int,
                                                               capsys: pytest.CaptureFixture) -> None:
    # 43 products; the largest group of identical images has 3, so a query has at least 40 candidates without copies.
    with pytest.raises(FashionrecError, match=f"-k {k} is too large .* at most 40"):
        evaluate(Catalog.open(copies_catalog), ["articleType"], k=k)
    assert main(["evaluate", "--catalog", str(copies_catalog), "-k", str(k)]) == 2
    assert "at most 40" in capsys.readouterr().err


def test_the_largest_k_is_scored(copies_catalog: Path) -> None:
    result = evaluate(Catalog.open(copies_catalog), ["gender"], k=40)
    assert result.k == 40 and result.labels[0].queries == 43 and 0 < result.deduplicated[0].precision < 1
