"""What a query answers: `Recommendations` of `Match`es, and the similarity figure every face shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_K = 5


SIMILARITY_MEANING = ("similarity: how alike two products look, from -1 to 1 (the CLI and the web app show it as a "
                      "percentage: 100% is the same image): the cosine of their shape vectors in the catalog's search "
                      "space, and with a colour weight w the weighted mean (shape + w * colour) / (1 + w) of that and "
                      "the cosine of their colour vectors; it ranks products, it is not a probability")
"""What the one figure the CLI, the API and the web app show for a match means (they all show `Match.similarity`)."""


@dataclass(frozen=True)
class Match:
    """One recommended product."""

    id: str
    distance: float  # Euclidean distance between the query and the product's search vector (what search ranks by)
    image: str  # path of the product's image file
    metadata: dict[str, str | None]
    similarity: float  # the figure every face shows (see SIMILARITY_MEANING): 1 = identical
    colours: list[dict] = field(default_factory=list)  # dominant colours [{"rgb": "#a31f2b", "share": 0.62}, ...]


def similarity_scores(query: np.ndarray, vectors: np.ndarray, gain: float) -> np.ndarray:
    """The similarity (SIMILARITY_MEANING) of search vectors to a query [shape; g * colour] (`query.colour_gain`):
    their inner product over 1 + g, so that the same image scores 1 at any weight and g = 0 gives the shape cosine."""
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.float32)
    return (np.asarray(vectors, dtype=np.float32) @ np.asarray(query, dtype=np.float32)) / (1.0 + gain)


@dataclass(frozen=True)
class Recommendations:
    """The answer to one query: the model that produced it and the matches, nearest first."""

    model: str
    results: list[Match]
    notice: str | None = None  # set when a filter matched nothing: which one, and the values there are
    colour_weight: float = 0.0  # how much colour counted (0-1; see `Recommender.by_image`)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by the CLI (`--json`) and the REST API: each match's figure is `similarity`."""
        results = [{"id": m.id, "similarity": m.similarity, "image": m.image, "metadata": m.metadata,
                    "colours": m.colours} for m in self.results]
        return {"model": self.model, "colour_weight": self.colour_weight, "results": results, "notice": self.notice}
