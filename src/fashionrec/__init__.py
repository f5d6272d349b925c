"""fashionrec: recommend fashion products by how they look.

Three lines from a notebook:

    >>> from fashionrec import Catalog, Recommender
    >>> recommender = Recommender(Catalog.open("demo-catalog"))
    >>> recommender.by_image("photo.jpg", k=5).results

Names are imported on first use, so `import fashionrec` stays instant (no ONNX Runtime, no numpy work).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Catalog": "fashionrec.catalog",
    "IndexReport": "fashionrec.index",
    "index_images": "fashionrec.index",
    "read_metadata": "fashionrec.index",
    "Embedder": "fashionrec.models.embed",
    "load_model": "fashionrec.models.embed",
    "list_models": "fashionrec.models",
    "Recommender": "fashionrec.recommend",
    "Recommendations": "fashionrec.recommend",
    "Match": "fashionrec.recommend",
    "FashionrecError": "fashionrec.errors",
    "evaluate": "fashionrec.quality.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fashionrec' has no attribute {name!r}")
