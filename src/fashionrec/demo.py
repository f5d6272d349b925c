"""The demo job: index the shared sample catalog, then recommend for its real full-resolution photos.

It is what a newcomer runs first (README), so it finds the sample data by itself and reuses an
existing demo catalog (indexing is incremental: a second run only checks files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fashionrec.catalog.catalog import Catalog
from fashionrec.config import Settings, load_settings
from fashionrec.errors import FashionrecError
from fashionrec.index.run import IndexReport, index_images
from fashionrec.recommend.recommender import Recommender

SAMPLE_NAME = "fashion-product-images"


@dataclass(frozen=True)
class QueryOutcome:
    """One real photo: which product it shows, and where that product came in the results."""

    photo: Path
    product_id: str
    indexed: bool  # whether that product is in the catalog at all (with --limit it may not be)
    rank: int | None  # 1-based rank of its own product in the top k, None if absent
    top_ids: list[str]


@dataclass(frozen=True)
class DemoResult:
    """What the demo did: the indexing report and the outcome of each real-photo query."""

    report: IndexReport
    catalog_dir: Path
    k: int
    queries: list[QueryOutcome]
    examples_dir: Path  # the real photos, which the web app offers to try

    @property
    def found(self) -> int:
        """How many photos found their own product in the top k."""
        return sum(q.rank is not None for q in self.queries)


def demo_catalog_dir(settings: Settings) -> Path:
    """Where `fashionrec demo` builds its catalog (and where other commands look when given no --catalog)."""
    return settings.cache_dir / "demo-catalog"


def find_sample_data(explicit: str | os.PathLike | None = None) -> Path:
    """The sample data folder: the one given, $FASHIONREC_DEMO_DATA, or `shared/data/...` beside a checkout.

    Raises:
        FashionrecError: no folder with `images/` and `styles.csv` was found.
    """
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get("FASHIONREC_DEMO_DATA"):
        candidates.append(Path(os.environ["FASHIONREC_DEMO_DATA"]))
    for base in (Path.cwd(), *Path.cwd().parents[:2], *Path(__file__).resolve().parents[2:5]):
        candidates += [base / "shared" / "data" / SAMPLE_NAME, base.parent / "shared" / "data" / SAMPLE_NAME]
    for candidate in candidates:
        if (candidate / "images").is_dir() and (candidate / "styles.csv").is_file():
            return candidate.resolve()
    raise FashionrecError(
        f"the sample data ({SAMPLE_NAME}/ with images/ and styles.csv) was not found; "
        "pass --data DIR or set FASHIONREC_DEMO_DATA"
    )


def run_demo(data_dir: str | os.PathLike | None = None, catalog_dir: str | os.PathLike | None = None,
             limit: int | None = None, k: int = 5, progress: bool = True) -> DemoResult:
    """Index the sample (incrementally) and query it with every photo in `queries_fullres/`."""
    data = find_sample_data(data_dir)
    catalog_dir = Path(catalog_dir) if catalog_dir else demo_catalog_dir(load_settings())
    report = index_images(data / "images", catalog_dir, metadata=data / "styles.csv", limit=limit, progress=progress)
    catalog = Catalog.open(catalog_dir)
    recommender = Recommender(catalog)
    outcomes = []
    examples_dir = data / "queries_fullres"
    for photo in sorted(examples_dir.glob("*.jpg")):
        top_ids = [m.id for m in recommender.by_image(photo, k=k).results]
        rank = top_ids.index(photo.stem) + 1 if photo.stem in top_ids else None
        outcomes.append(QueryOutcome(photo, photo.stem, photo.stem in catalog, rank, top_ids))
    return DemoResult(report, catalog_dir, k, outcomes, examples_dir)
