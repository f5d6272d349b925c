"""A label-trained projection stored with a catalog (`fashionrec tune` fits it; `Catalog.open` applies it).

Only the data and its application live here, so the catalog can apply a tuning without importing the
training code (which sits at the evaluation end of the pipeline, in `fashionrec.tune`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MATRIX_KEY = "tuning_matrix"  # the array in the catalog store
LABEL_KEY, WEIGHT_KEY, FITTED_ON_KEY = "tuning_label", "tuning_weight", "tuning_fitted_on"  # info keys


@dataclass(frozen=True)
class Tuning:
    """Appends `weight` x the unit-length projection of a vector onto label-discriminant directions.

    The search vector stays the whole (whitened) vector plus a few label directions, so the look is kept and
    the category is emphasised; `weight` 0 would be no tuning at all.
    """

    label: str
    matrix: np.ndarray  # (d, m) float32: discriminant directions of `label` in the catalog's search space
    weight: float
    fitted_on: str  # fingerprint of the products (and so of the search space) it was fitted on

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """(n, d) or (d,) unit vectors to (n, d + m) or (d + m,) unit vectors."""
        vectors = np.asarray(vectors, dtype=np.float32)
        projected = vectors @ self.matrix
        projected /= np.maximum(np.linalg.norm(projected, axis=-1, keepdims=True), 1e-12)
        joined = np.concatenate([vectors, self.weight * projected], axis=-1)
        return (joined / np.linalg.norm(joined, axis=-1, keepdims=True)).astype(np.float32)
