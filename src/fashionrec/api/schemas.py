"""The shapes of the API's JSON answers: they are its contract, published in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from fashionrec.recommend import SIMILARITY_MEANING


class SwatchOut(BaseModel):
    """One dominant colour of a product."""

    rgb: str = Field(description="sRGB hex, e.g. #a31f2b")
    share: float = Field(description="its share of the product's own pixels, 0-1")


class MatchOut(BaseModel):
    """One recommended product (the CLI's `--json` shape; `image` is this API's URL of the image)."""

    id: str
    similarity: float = Field(description=SIMILARITY_MEANING)
    cosine: float = Field(description="the raw figure behind `similarity` (see there): 1 is the same image")
    image: str = Field(description="path of the product image on this server")
    metadata: dict[str, str | None]
    colours: list[SwatchOut] = Field(default_factory=list, description="the product's dominant colours, heaviest "
                                                                       "first (none until its colour is computed)")


class RecommendationsOut(BaseModel):
    """The answer to one query, nearest product first."""

    model: str
    colour_weight: float = Field(description="how much colour counted, 0 (shape only) to 1 (the strongest setting)")
    results: list[MatchOut]
    notice: str | None = Field(None, description="set when a filter matched nothing: the filter, and the values "
                                                 "its column has (or that the filters together allow no product)")


class ProductOut(BaseModel):
    """A catalog product."""

    id: str
    image: str
    metadata: dict[str, str | None]


class WrittenOut(BaseModel):
    """A product as a write stored it (201: created; 200: it replaced the product of that id)."""

    id: str
    image: str
    metadata: dict[str, str | None]
    created: bool


class BatchOut(BaseModel):
    """What one batch write stored, all or nothing."""

    products: list[WrittenOut]
    created: int
    replaced: int


class RemovedOut(BaseModel):
    """A product removed."""

    id: str
    removed: bool


class HealthOut(BaseModel):
    """What this server answers from."""

    status: str
    model: str
    model_id: str
    dim: int
    products: int
    generation: int = Field(description="the catalog snapshot answering: it moves on as products are written")


class ErrorOut(BaseModel):
    """Every error response: one sentence naming what is wrong (the file, field or route) and what to do."""

    detail: str = Field(description="what went wrong and what to do, in one readable sentence")
    errors: list[dict[str, Any]] | None = Field(
        None, description="only on 422 answers to a malformed request: FastAPI's list of the fields at fault "
                          "(loc, msg, type), for programs")
