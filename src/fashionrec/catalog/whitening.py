"""PCA-whitening fitted on a catalog's own vectors: centre, rotate onto the principal axes, equalise their spread.

Why: pooled CNN features of product photos share a large common part ("an object on white"), so raw cosines
are all high and that common part dominates the ranking. Whitening removes the mean and gives every principal
direction the same weight; on the shared sample it raises leave-one-out precision@5 for articleType and for
baseColour alike (docs/QUALITY.md). It is fitted per catalog when indexing ends, stored as part of the catalog's
search space (`catalog.space`), and applied to catalog and query vectors alike; it also shortens the vectors
(faster search, less memory).

Shrinkage (why every catalog is whitened, whatever its size): a full whitening gives a direction seen in a few
products as much weight as the main ones, which needs thousands of products to estimate; fitted on fewer it ranks
worse than the raw vectors (a 400-product shop: articleType P@5 0.25 against 0.35). Adding SHRINKAGE times the
mean variance to every direction's variance before equalising keeps the weak directions from being blown up: it
centres and gently flattens the main directions. Measured on many catalogs (`benchmarks/catalogs.py`, docs/QUALITY.md)
it is at least as good as the raw vectors from 200 products to the whole sample and in single-kind shops, and level
with them below: one rule from MIN_PRODUCTS on, with no cliff where it starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# A whitening is fitted from this many products on. Below it the whitened and the raw vectors rank alike (10-100
# products, 20 seeds: level), while a space fitted on a handful of products would keep a shop that grows by live
# writes in a few dimensions until its next index run.
MIN_PRODUCTS = 100
# Added to every principal variance, in units of their mean (docs/QUALITY.md "Search space": 10-100 measured; 20-40
# are at least as good as the raw vectors on every catalog, 40 the best on the smallest and single-kind shops).
SHRINKAGE = 40.0


@dataclass(frozen=True)
class Whitening:
    """A fitted whitening: `apply` maps model vectors (n, d) to unit search vectors (n, r)."""

    mean: np.ndarray  # (d,) float32
    matrix: np.ndarray  # (d, r) float32: principal axes divided by their standard deviation
    fitted_on: str  # digest of the products it was fitted on (`derived.products_digest`)
    generation: int = 0  # the catalog generation it was fitted at (what changed since: `catalog.space.whitening_drift`)
    products: int = 0  # how many products it was fitted on
    shrinkage: float = 0.0  # SHRINKAGE when it was fitted (0: an older rule's whitening; an index run fits it again)

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
    """The output length for a catalog of `products` (0: fewer than MIN_PRODUCTS, or whitening turned off).

    At most the rank of the products' spread (products - 1): a direction none of them varies along says nothing
    about them, and a query photo's part along it would only shrink the query's shape similarities (so colour, at
    the same weight, would count more against a small catalog)."""
    dim = min(wanted, model_dim, products - 1)
    return dim if min(wanted, model_dim) > 0 and products >= MIN_PRODUCTS else 0


def fit_whitening(blocks: Iterable[np.ndarray], dim: int, fitted_on: str, generation: int = 0) -> Whitening:
    """Fit a shrinkage whitening on vectors given as row blocks, in one streaming pass (memory: d x d, whatever the
    catalog size).

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
    shrink = SHRINKAGE * max(float(np.trace(covariance)) / len(covariance), 1e-12)  # see the module's docstring
    matrix = axes[:, order] / np.sqrt(np.maximum(variances[order], 0.0) + shrink)
    return Whitening(mean.astype(np.float32), matrix.astype(np.float32), fitted_on, generation, total, SHRINKAGE)
