"""Behaviour pinned: the answers of the library on the real sample, against a golden file written before a change.

The file (`tests/golden/answers.json`) holds the top-10 ids and similarities of 50 `by_id` queries (10 of them
filtered), the 17 full-resolution `by_image` queries and a 400-product `similar_all`, each at colour weight 0, the
default and 1. A restructuring must give the same ids in the same order and similarities within 1e-6. A change that
is meant to change answers rewrites the file on purpose and says so in its commit:

    python -m tests.test_golden --write

The catalogs are seeded subsets of the sample (2,100 products, holding the 17 photographed products; and 400
products), indexed with EfficientNet-Lite0 so that the test stays quick. Rewritten for issue 22 (the shrinkage
search space at every size, the colour gains and shortlist, the similarity figure read against the catalog's pairs),
and again for its size rule (the layout gain grows from 600 products: only the 2,100-product catalog's default answers
changed; weights 0 and 1 and the 400-product catalog kept every id). Rewritten for issue 24: query photos decode
no larger than the catalog's look needs (`index.read.decode_query`); only `by_image` changed, each photo still finds
its own product first, 244 of the 255 top-5 ids kept (tests/index/test_read.py checks them against full decodes).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden" / "answers.json"
MODEL = "efficientnet-lite0"
WEIGHTS = {"0": 0.0, "default": None, "1": 1.0}
TOP = 10
TOLERANCE = 1e-6


def _subset(sample_dir: Path, count: int, seed: int, keep: list[str]) -> list[str]:
    """`count` sample ids drawn with `seed`, always holding `keep`, in sorted order."""
    ids = sorted(path.stem for path in (sample_dir / "images").glob("*.jpg"))
    others = [i for i in ids if i not in set(keep)]
    drawn = np.random.default_rng(seed).choice(len(others), count - len(keep), replace=False)
    return sorted(keep + [others[i] for i in drawn.tolist()])


def _index(sample_dir: Path, ids: list[str], root: Path) -> Path:
    """Copy the products `ids` into `root/images` and index them (with the sample's styles.csv)."""
    from fashionrec.index.run import index_images

    images = root / "images"
    images.mkdir(parents=True)
    for product_id in ids:
        shutil.copy(sample_dir / "images" / f"{product_id}.jpg", images / f"{product_id}.jpg")
    index_images(images, root / "catalog", metadata=sample_dir / "styles.csv", model=MODEL, progress=False)
    return root / "catalog"


def _pairs(recommendations) -> dict:
    return {"ids": [m.id for m in recommendations.results],
            "similarities": [float(m.similarity) for m in recommendations.results]}


def compute_answers(sample_dir: Path, work_dir: Path) -> dict:
    """Every pinned answer, computed with the library as it is now."""
    from fashionrec import Catalog, Recommender
    from fashionrec.recommend.similar_all import similar_all

    photos = sorted((sample_dir / "queries_fullres").glob("*.jpg"))
    photographed = [path.stem for path in photos]
    big_ids = _subset(sample_dir, 2100, seed=20, keep=photographed)
    recommender = Recommender(Catalog.open(_index(sample_dir, big_ids, work_dir / "big")))
    assert recommender.catalog.whitening is not None, "the 2,100-product catalog must be whitened"
    rng = np.random.default_rng(21)
    queried = [big_ids[i] for i in rng.choice(len(big_ids), 50, replace=False).tolist()]
    answers: dict = {"by_id": {}, "by_image": {}, "similar_all": {}}
    for name, weight in WEIGHTS.items():
        by_id = {}
        for number, product_id in enumerate(queried):
            where = {"gender": ["Men", "Boys"]} if number < 5 else {"masterCategory": "Apparel"} if number < 10 else None
            by_id[product_id] = _pairs(recommender.by_id(product_id, k=TOP, where=where, colour_weight=weight))
        answers["by_id"][name] = by_id
        answers["by_image"][name] = {path.stem: _pairs(recommender.by_image(path, k=TOP, colour_weight=weight))
                                     for path in photos}
    small = Catalog.open(_index(sample_dir, _subset(sample_dir, 400, seed=22, keep=[]), work_dir / "small"))
    assert small.whitening is not None, "the 400-product catalog is whitened too (shrinkage: no size threshold)"
    for name, weight in WEIGHTS.items():
        table = similar_all(small, k=TOP, colour_weight=weight)
        answers["similar_all"][name] = {product_id: {"ids": ids, "similarities": sims}
                                        for product_id, ids, sims in zip(table.ids, table.similar, table.similarities)}
    return answers


@pytest.fixture(scope="module")
def answers(sample_dir, tmp_path_factory, lite0) -> dict:
    return compute_answers(sample_dir, tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("kind", ["by_id", "by_image", "similar_all"])
def test_answers_equal_the_golden_file(answers, kind):
    if not GOLDEN.is_file():
        pytest.fail(f"{GOLDEN} is missing: write it with `python -m tests.test_golden --write`")
    golden = json.loads(GOLDEN.read_text())[kind]
    now = answers[kind]
    assert sorted(now) == sorted(golden)
    for weight in golden:
        assert sorted(now[weight]) == sorted(golden[weight]), f"{kind} at weight {weight}: other queries"
        for query, expected in golden[weight].items():
            got = now[weight][query]
            where = f"{kind} {query} at colour weight {weight}"
            assert got["ids"] == expected["ids"], where
            assert np.allclose(got["similarities"], expected["similarities"], rtol=0, atol=TOLERANCE), where


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_golden --write")
    import tempfile

    from tests.conftest import SAMPLE_DIR

    with tempfile.TemporaryDirectory() as work:
        computed = compute_answers(SAMPLE_DIR, Path(work))
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(computed, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {GOLDEN}")
