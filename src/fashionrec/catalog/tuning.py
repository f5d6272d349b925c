"""A label-trained projection stored with a catalog (`fashionrec tune` fits it; `Catalog.open` applies it).

Only the data and its application live here, so the catalog can apply a tuning without importing the
training code (which sits at the evaluation end of the pipeline, in `quality.tune`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PART_NAMES = ("lda", "head")  # the projections a tuning may hold, in the order they are appended


@dataclass(frozen=True)
class TuningPart:
    """One projection of the search vector: `matrix` (d, m), appended at unit length times `weight`."""

    name: str  # "lda": label-discriminant directions; "head": an embedding trained on the labels
    matrix: np.ndarray
    weight: float


@dataclass(frozen=True)
class Tuning:
    """Appends weighted, unit-length projections of a vector to it: [v; w1 P1(v); w2 P2(v)], then unit length.

    The search vector keeps the whole (whitened) vector, so the look is kept while the labels are emphasised;
    all weights 0 would be no tuning at all.
    """

    label: str
    look_label: str
    parts: tuple[TuningPart, ...]
    fitted_on: str  # digest of the space it was fitted in (its whitening, or the model's vectors: "")

    @property
    def weights(self) -> dict[str, float]:
        """{part name: weight}."""
        return {part.name: part.weight for part in self.parts}

    def describe(self) -> str:
        """E.g. 'articleType (lda 2, head 2)'."""
        return f"{self.label} ({', '.join(f'{p.name} {p.weight:g}' for p in self.parts)})"

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """(n, d) or (d,) unit vectors to (n, d + m...) or (d + m...,) unit vectors."""
        vectors = np.asarray(vectors, dtype=np.float32)
        joined = [vectors]
        for part in self.parts:
            projected = vectors @ part.matrix
            projected /= np.maximum(np.linalg.norm(projected, axis=-1, keepdims=True), 1e-12)
            joined.append(np.float32(part.weight) * projected)
        out = np.concatenate(joined, axis=-1)
        return (out / np.linalg.norm(out, axis=-1, keepdims=True)).astype(np.float32)
