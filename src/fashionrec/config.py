"""Every setting of fashionrec in one place, read from `FASHIONREC_*` environment variables.

Settings are read when asked for (`load_settings()`), never at import time, so a test or a server can
change the environment before it builds its objects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from fashionrec.errors import SettingsError

DEFAULT_MODEL = "efficientnet-lite2"
# Near-duplicate images: cosine of whitened vectors at or above this. Re-checked in the shrinkage-whitened space
# (docs/QUALITY.md, "Near copies"): on the sample, 0.996 finds 66 pairs of distinct files, 63 of them the pairs the
# full whitening found at 0.99 (the same photo under two ids, shade variants shot identically); at 0.995 lipsticks of
# other shades (photographed alike) join them, and 0.99 would find 136.
DUPLICATE_COSINE = 0.996
# Exact search costs ~9 ms per query at 100k 512-d vectors and ~90 ms at 1M here (docs/PERFORMANCE.md).
ANN_THRESHOLD = 200_000
WHITEN_DIM = 512  # docs/QUALITY.md: the best of 128/256/512/1024 on the sample
# The search space stays put as products come and go; an index run fits it again once this share of the products it
# was fitted on has been added, replaced or removed since (`catalog.space.whitening_drift`). Measured (docs/QUALITY.md,
# benchmarks/drift.py, shrinkage whitening): at 0.25 articleType P@5 is 0.0024 under a refit when whole new kinds of
# product arrived (0.0032 at 0.5), and 0.0004 when more of the same did.
REFIT_DRIFT = 0.25
# How often a serving process checks whether the catalog it serves has a new committed generation.
FOLLOW_SECONDS = 1.0
COLOUR_WEIGHT = 0.12  # the default "Match colour" (0-1), chosen on many catalogs: docs/QUALITY.md, colour
# What a colour weight W means (`recommend.query.colour_gain`): the query is [shape; gain x colour], the colour
# layout's gain rising to COLOUR_LAYOUT_FULL at W = COLOUR_WHOLE_FROM and staying there, the whole product's colour
# (what colour alone ranks best by, and what costs the kind most) coming in only above it, to COLOUR_WHOLE_FULL at
# W 1. Measured on many catalogs (docs/QUALITY.md): at W 0.12 the layout's gain 0.3 (0.4 from 1,500 products, below)
# keeps articleType P@5 within 0.01 of shape only on every catalog; at W 1 the whole sample's baseColour P@5 passes
# 0.45.
COLOUR_LAYOUT_FULL = 1.25
COLOUR_WHOLE_FROM = 0.5
COLOUR_WHOLE_FULL = 2.5
# A larger catalog holds more products of the query's kind in its shape shortlist, so the same layout gain costs it
# less articleType: the layout's gain is COLOUR_SIZE_RISE times higher from COLOUR_SIZE_TO products, rising with the
# log of the catalog's size from COLOUR_SIZE_FROM (capped at COLOUR_LAYOUT_FULL). Chosen on the frontier of every
# catalog measured (docs/QUALITY.md, benchmarks/colour_frontier.py layout): 1,000 and 2,000 products then pass
# +0.05 baseColour P@5 within 0.01 articleType, the whole sample reaches 0.374 (0.360 without it); the 200 and 400
# product subsets, the tightest on articleType, and the 450-product shop kept aside are below COLOUR_SIZE_FROM.
COLOUR_SIZE_FROM, COLOUR_SIZE_TO, COLOUR_SIZE_RISE = 600, 1_500, 4 / 3
# Colour re-ranks only the products nearest in shape (`recommend.query.shortlist_size`): 3% of the catalog, at least
# 20 and at most 100, so even the strongest colour setting answers a pink handbag with bags, not with nail polish
# (measured on many catalogs, docs/QUALITY.md: at W 1 a 200-product shop loses 0.067 articleType instead of 0.104,
# the whole sample 0.086 instead of 0.153).
COLOUR_SHORTLIST, COLOUR_SHORTLIST_MIN, COLOUR_SHORTLIST_SHARE = 100, 20, 0.03
# Query photos (uploads) decoded in full: 4096 x 4096 holds a 5K screenshot and any shop's PNG or WebP, and costs
# at most ~65 MB (RGBA) to decode; Pillow's own bomb limit (89 M pixels) would let a 130 kB PNG take 170 MB.
# Photos of people (issue 23, docs/QUALITY.md "Photos of people"): a photo whose pixels are at least this share skin,
# and where a garment kind is seen with at least this probability, is answered per garment region, at most
# REGION_LIMIT of them; unless its nearest product is as close as REGION_SAME_PHOTO (the shop's own photo; measured on
# the whole sample and on 400 + 17 products: own photos 0.82 or more, the VITON-HD photos' nearest 0.66 at most).
# Most images one shared model run takes from concurrent queries (`models.shared_runs`), where runs are shared: on a
# GPU. On CPU the model gains little from batches (lite2 on 2 cores: 143 images/s at batch 1, 158 at 16) and sharing
# measured slower (API, 8 clients: 48 against 44 requests/s), so the default (auto) shares runs on a GPU only. Measured
# again for issue 24 (docs/PERFORMANCE.md section 11): 34.7-37.1 against 32.5-38.9 requests/s, within the drift.
QUERY_BATCH = 16
GARMENT_KINDS = ("top", "bottom", "dress", "shoes", "bag")  # what `models.garments` finds, in its class table's order
REGION_SKIN_SHARE = 0.02
REGION_MIN_SCORE = 0.05
REGION_LIMIT = 3
REGION_SAME_PHOTO = 0.75
# The same in a catalog searched on raw vectors (under 100 products: not whitened), where every cosine is high. Measured
# on 60 sample products + the 17: own photos 0.935 or more, the VITON-HD photos' nearest 0.884 at most.
REGION_SAME_PHOTO_RAW = 0.92
# A region's answers stay of its kind where the catalog's metadata says kinds (measured: 16 -> 18 of 23 VITON tops).
REGION_KIND_COLUMN = "subCategory"
REGION_KIND_VALUES: dict[str, tuple[str, ...]] = {
    "top": ("Topwear",), "bottom": ("Bottomwear",), "dress": ("Dress",),
    "shoes": ("Shoes", "Sandal", "Flip Flops"), "bag": ("Bags",),
}
# A query photo brought to a catalog's look (`imaging.look`) is decoded only as large as that needs: both sides at least
# QUERY_DRAFT_LOOK times the look's longer side (the resampling down to the look still averages many pixels into each),
# never larger than the model's own draft. For the sample's 60x80 look a 1800x2400 JPEG decodes at 1/8 instead of 1/2,
# and the resampling to the look reads 16 times fewer pixels: by_image p50 36 ms instead of 48-52; against the photos
# decoded in full its answers are as close as the 1/2 decode's were (docs/PERFORMANCE.md section 11).
QUERY_DRAFT_LOOK = 2
MAX_UPLOAD_PIXELS = 4096 * 4096
# A query JPEG is decoded 2-8x smaller per side by the decoder itself (draft): a 40 MP camera photo costs a few MB.
MAX_UPLOAD_JPEG_PIXELS = 40_000_000
# Images decoding at once per process: bounds decode memory however many uploads arrive together
# (benchmarks/bad_uploads.py); small catalog JPEGs decode in well under a millisecond, so the indexer barely waits.
DECODE_SLOTS = 2
# A product's metadata as written (PUT, a batch's per product, `fashionrec add --metadata`): one flat JSON object of
# text or null. A shop's row is a few hundred bytes (the sample's longest is 170); the bounds keep a hostile field
# from costing a parse of megabytes or a message listing thousands of keys.
MAX_METADATA_BYTES = 64 * 1024
MAX_METADATA_KEYS = 200
# What a product id may be, wherever it comes from (a file name, a write's id, the API's path): it names the product's
# image file, so 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit (no hidden files, no '..').
PRODUCT_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
MAX_PRODUCT_ID_LENGTH = 128


@dataclass(frozen=True)
class Settings:
    """Process-wide settings; each field names the environment variable that overrides it."""

    cache_dir: Path  # FASHIONREC_CACHE: exported ONNX models live under cache_dir / "models"
    default_model: str  # FASHIONREC_MODEL: backbone for new catalogs
    batch_size: int  # FASHIONREC_BATCH_SIZE: images per inference call
    query_batch: int  # FASHIONREC_QUERY_BATCH: most images concurrent queries share a model run with (1: off, 0: auto)
    decode_workers: int  # FASHIONREC_DECODE_WORKERS: threads decoding images while the model runs
    inference_threads: int  # FASHIONREC_THREADS: ONNX Runtime intra-op threads (0 = one per core)
    max_image_pixels: int  # FASHIONREC_MAX_PIXELS: larger catalog images are refused (decompression bombs)
    max_upload_pixels: int  # FASHIONREC_MAX_UPLOAD_PIXELS: larger query photos decoded in full are refused
    max_upload_jpeg_pixels: int  # FASHIONREC_MAX_UPLOAD_JPEG_PIXELS: the same for a JPEG decoded at reduced scale
    decode_slots: int  # FASHIONREC_DECODE_SLOTS: images decoding at once in one process (the others wait)
    keras_home: Path  # KERAS_HOME: where Keras (and so fashionrec) looks for Keras weight files
    allow_download: bool  # FASHIONREC_ALLOW_DOWNLOAD: fetch missing published weights (0 to forbid)
    match_queries: bool  # FASHIONREC_MATCH_QUERIES: bring large query photos to the catalog's look (0 to skip)
    catalog_dir: Path | None  # FASHIONREC_CATALOG: the catalog the web app and the API serve
    max_upload_bytes: int  # FASHIONREC_MAX_UPLOAD_MB: larger uploads are refused (API: 413), default 10 MB
    max_k: int  # FASHIONREC_MAX_K: the most results one query may ask for (CLI -k, API k, web app slider)
    examples_dir: Path | None  # FASHIONREC_EXAMPLES: photos the web app offers to try (the demo sets it)
    duplicate_cosine: float  # FASHIONREC_DUPLICATE_COSINE: results this close to a shown one are its near copies
    whiten_dim: int  # FASHIONREC_WHITEN_DIM: PCA-whiten catalog vectors to this length (0: raw model vectors)
    search: str  # FASHIONREC_SEARCH (or FASHIONREC_INDEX): auto, exact, ivf, hnsw (FAISS), or a Milvus address
    ann_threshold: int  # FASHIONREC_ANN_THRESHOLD: catalog size from which auto uses the compact IVF index
    # FASHIONREC_MILVUS_TOKEN: credentials of a Milvus server, "user:password" or an API key (never in the address,
    # where `ps` and shell history would show them); kept out of repr so a logged Settings never shows it
    milvus_token: str = field(repr=False)
    milvus_token_file: Path | None  # FASHIONREC_MILVUS_TOKEN_FILE: or a file holding them (e.g. a mounted secret)
    refit_drift: float = REFIT_DRIFT  # FASHIONREC_REFIT_DRIFT: drift past which an index run refits the search space
    follow_seconds: float = FOLLOW_SECONDS  # FASHIONREC_FOLLOW_SECONDS: a server's check for a newer catalog (0: off)
    colour_weight: float = COLOUR_WEIGHT  # FASHIONREC_COLOUR_WEIGHT: how much colour matters by default, 0-1
    # FASHIONREC_API_TOKEN: the bearer token that turns the API's product writes on (unset: writes are off)
    api_token: str = field(default="", repr=False)

    @property
    def models_dir(self) -> Path:
        """Folder of the exported ONNX files."""
        return self.cache_dir / "models"


def _env_int(name: str, default: int) -> int:
    """An integer from the environment, with a clear message when it is not one."""
    return int(_env_number(name, default, int, "a whole number"))


def _env_float(name: str, default: float) -> float:
    """A number from the environment, with a clear message when it is not one."""
    return _env_number(name, default, float, "a number")


def _env_fraction(name: str, default: float) -> float:
    """A number from 0 to 1 from the environment; anything else is refused, never clamped."""
    value = _env_float(name, default)
    if not 0 <= value <= 1:
        raise SettingsError(f"{name} must be a number from 0 to 1, got {os.environ.get(name)!r}")
    return value


def _env_number(name: str, default: float, parse: type, what: str) -> float:
    """Parse one environment variable with `parse`, naming the variable when it is wrong."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {what}, got {raw!r}") from None


def _env_path(name: str) -> Path | None:
    """A folder from the environment, or None when unset."""
    raw = os.environ.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


def _env_flag(name: str) -> bool:
    """A switch that is on unless the environment says 0, false or no."""
    return os.environ.get(name, "1").strip().lower() not in ("0", "false", "no", "off")


def load_settings() -> Settings:
    """Read the settings from the environment, with defaults for everything.

    Example:
        >>> load_settings().batch_size
        16
    """
    cache = os.environ.get("FASHIONREC_CACHE") or Path.home() / ".cache" / "fashionrec"
    keras_home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    cores = os.cpu_count() or 1
    return Settings(
        cache_dir=Path(cache).expanduser(),
        default_model=os.environ.get("FASHIONREC_MODEL") or DEFAULT_MODEL,
        batch_size=max(1, _env_int("FASHIONREC_BATCH_SIZE", 16)),  # docs/PERFORMANCE.md
        query_batch=max(0, _env_int("FASHIONREC_QUERY_BATCH", 0)),
        decode_workers=max(1, _env_int("FASHIONREC_DECODE_WORKERS", min(4, cores))),
        inference_threads=max(0, _env_int("FASHIONREC_THREADS", 0)),
        max_image_pixels=max(1, _env_int("FASHIONREC_MAX_PIXELS", 40_000_000)),
        max_upload_pixels=max(1, _env_int("FASHIONREC_MAX_UPLOAD_PIXELS", MAX_UPLOAD_PIXELS)),
        max_upload_jpeg_pixels=max(1, _env_int("FASHIONREC_MAX_UPLOAD_JPEG_PIXELS", MAX_UPLOAD_JPEG_PIXELS)),
        decode_slots=max(1, _env_int("FASHIONREC_DECODE_SLOTS", DECODE_SLOTS)),
        keras_home=Path(keras_home).expanduser(),
        allow_download=_env_flag("FASHIONREC_ALLOW_DOWNLOAD"),
        match_queries=_env_flag("FASHIONREC_MATCH_QUERIES"),
        catalog_dir=_env_path("FASHIONREC_CATALOG"),
        max_upload_bytes=int(max(0.001, _env_float("FASHIONREC_MAX_UPLOAD_MB", 10.0)) * 1_000_000),
        max_k=max(1, _env_int("FASHIONREC_MAX_K", 100)),
        examples_dir=_env_path("FASHIONREC_EXAMPLES"),
        duplicate_cosine=_env_float("FASHIONREC_DUPLICATE_COSINE", DUPLICATE_COSINE),
        whiten_dim=max(0, _env_int("FASHIONREC_WHITEN_DIM", WHITEN_DIM)),
        search=(os.environ.get("FASHIONREC_SEARCH") or os.environ.get("FASHIONREC_INDEX") or "auto").strip(),
        ann_threshold=max(0, _env_int("FASHIONREC_ANN_THRESHOLD", ANN_THRESHOLD)),
        milvus_token=os.environ.get("FASHIONREC_MILVUS_TOKEN", "").strip(),
        milvus_token_file=_env_path("FASHIONREC_MILVUS_TOKEN_FILE"),
        refit_drift=max(0.0, _env_float("FASHIONREC_REFIT_DRIFT", REFIT_DRIFT)),
        follow_seconds=max(0.0, _env_float("FASHIONREC_FOLLOW_SECONDS", FOLLOW_SECONDS)),
        colour_weight=_env_fraction("FASHIONREC_COLOUR_WEIGHT", COLOUR_WEIGHT),
        api_token=os.environ.get("FASHIONREC_API_TOKEN", "").strip(),
    )
