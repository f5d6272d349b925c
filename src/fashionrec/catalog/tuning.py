"""A label-trained projection stored with a catalog (`fashionrec tune` fits it; `Catalog.open` applies it).

Only the data and its application live here, so the catalog can apply a tuning without importing the
training code (which sits at the evaluation end of the pipeline, in `fashionrec.tune`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

PART_NAMES = ("lda", "head")  # the projections a tuning may hold, in the order they are appended
ARRAY_PREFIX = "tuning_"  # the arrays in the catalog store: tuning_lda, tuning_head
LABEL_KEY, LOOK_LABEL_KEY, WEIGHTS_KEY, FITTED_ON_KEY = (  # info keys
    "tuning_label", "tuning_look_label", "tuning_weights", "tuning_fitted_on")
INFO_KEYS = (LABEL_KEY, LOOK_LABEL_KEY, WEIGHTS_KEY, FITTED_ON_KEY, "tuning_weight")  # the last: written by 0.1
ARRAY_NAMES = tuple(ARRAY_PREFIX + name for name in PART_NAMES) + ("tuning_matrix",)  # likewise


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
    fitted_on: str  # fingerprint of the products (and so of the search space) it was fitted on

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

    def stored(self) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """The arrays and info keys that store this tuning in a catalog."""
        arrays = {ARRAY_PREFIX + part.name: part.matrix for part in self.parts}
        info = {LABEL_KEY: self.label, LOOK_LABEL_KEY: self.look_label, FITTED_ON_KEY: self.fitted_on,
                WEIGHTS_KEY: json.dumps(self.weights)}
        return arrays, info


def load_tuning(info: dict[str, str], arrays: dict[str, np.ndarray]) -> Tuning | None:
    """The tuning stored as `Tuning.stored` wrote it, or None (none stored, or one this version cannot read)."""
    if WEIGHTS_KEY not in info:
        return None
    weights = json.loads(info[WEIGHTS_KEY])
    if any(ARRAY_PREFIX + name not in arrays for name in weights):
        return None
    parts = tuple(TuningPart(name, arrays[ARRAY_PREFIX + name], float(weights[name]))
                  for name in PART_NAMES if name in weights)
    return Tuning(info[LABEL_KEY], info.get(LOOK_LABEL_KEY, ""), parts, info[FITTED_ON_KEY])
