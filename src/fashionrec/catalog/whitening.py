"""PCA-whitening fitted on a catalog's own vectors: centre, rotate onto the principal axes, equalise their spread.

Why: pooled CNN features of product photos share a large common part ("an object on white"), so raw cosines
are all high and that common part dominates the ranking. Whitening removes the mean and gives every principal
direction the same weight; on the shared sample it raises leave-one-out precision@5 for articleType and for
baseColour alike (docs/QUALITY.md). It is fitted per catalog when indexing ends, stored as part of the catalog's
search space (`catalog.space`), and applied to catalog and query vectors alike; it also shortens the vectors
(faster search, less memory).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

PRODUCTS_PER_DIMENSION = 4  # fit only with at least this many products per output dimension
EIGEN_FLOOR = 1e-6  # relative to the largest variance: directions weaker than this are not amplified


@dataclass(frozen=True)
class Whitening:
    """A fitted whitening: `apply` maps model vectors (n, d) to unit search vectors (n, r)."""

    mean: np.ndarray  # (d,) float32
    matrix: np.ndarray  # (d, r) float32: principal axes divided by their standard deviation
    fitted_on: str  # digest of the products it was fitted on (`derived.products_digest`)
    generation: int = 0  # the catalog generation it was fitted at (what changed since: `catalog.space.whitening_drift`)
    products: int = 0  # how many products it was fitted on

    @property
    def dim(self) -> int:
        """Length of the whitened vectors."""
        return self.matrix.shape[1]

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Whitened, unit-length float32 vectors (a single vector (d,) gives (r,))."""
        projected = (np.asarray(vectors, dtype=np.float32) - self.mean) @ self.matrix
        norms = np.linalg.norm(projected, axis=-1, keepdims=True)
        return (projected / np.maximum(norms, 1e-12)).astype(np.float32)


def whitening_dim(products: int, wanted: int, model_dim: int) -> int:
    """The output length for a catalog of `products` (0: too few products to fit, or whitening turned off)."""
    dim = min(wanted, model_dim)
    return dim if dim > 0 and products >= PRODUCTS_PER_DIMENSION * dim else 0


def fit_whitening(blocks: Iterable[np.ndarray], dim: int, fitted_on: str, generation: int = 0) -> Whitening:
    """Fit on vectors given as row blocks, in one streaming pass (memory: d x d, whatever the catalog size).

    Example:
        >>> w = fit_whitening([vectors], dim=256, fitted_on="...")
        >>> w.apply(vectors).shape
        (7254, 256)
    """
    total, sums, products = 0, None, None
    for block in blocks:
        block = np.asarray(block, dtype=np.float64)
        if sums is None:
            sums, products = np.zeros(block.shape[1]), np.zeros((block.shape[1], block.shape[1]))
        total += len(block)
        sums += block.sum(axis=0)
        products += block.T @ block
    if total == 0 or sums is None:
        raise ValueError("no vectors to fit a whitening on")
    mean = sums / total
    covariance = products / total - np.outer(mean, mean)
    variances, axes = np.linalg.eigh(covariance)
    order = np.argsort(variances)[::-1][:dim]
    floor = EIGEN_FLOOR * max(float(variances[order[0]]), 1e-12)
    matrix = axes[:, order] / np.sqrt(np.maximum(variances[order], floor))
    return Whitening(mean.astype(np.float32), matrix.astype(np.float32), fitted_on, generation, total)
