"""The API's contract as its routes declare it, published in the OpenAPI schema: the shapes of the JSON answers, the
product id every product route takes, how an upload's parts are encoded, and the links from a write's answer to the
routes that take the product's id (the parts known only once a catalog is open are added by `api.openapi`)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Path
from pydantic import BaseModel, Field

from fashionrec.config import MAX_PRODUCT_ID_LENGTH, PRODUCT_ID_PATTERN
from fashionrec.imaging.formats import accepted_media_types
from fashionrec.recommend import GARMENT_KINDS as KINDS
from fashionrec.recommend import SIMILARITY_MEANING

PRODUCT_ID_RULE = ("1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit (it names the "
                   "product's image file)")


def product_id_path() -> Any:
    """The `product_id` path parameter, its rule in the schema. The rule is checked where it matters, not here: a
    write with an id that breaks it is 422 (the library's check, naming the rule), a read 404 (no product has it)."""
    return Path(description=f"the product's id: {PRODUCT_ID_RULE}",
                json_schema_extra={"pattern": f"^{PRODUCT_ID_PATTERN}$", "minLength": 1,
                                   "maxLength": MAX_PRODUCT_ID_LENGTH})


def multipart_encoding(photo: str, metadata: str | None = None) -> dict[str, Any]:
    """A route's `openapi_extra`: the photo field is sent as one of the accepted image types (the server tells the
    format by the bytes, whatever the part says), the metadata field as JSON."""
    encoding = {photo: {"contentType": ", ".join(accepted_media_types())}}
    if metadata:
        encoding[metadata] = {"contentType": "application/json"}
    return {"requestBody": {"content": {"multipart/form-data": {"encoding": encoding}}}}


_PRODUCT_ROUTES = {"getProduct": ("/products/{product_id}", "get"), "getImage": ("/products/{product_id}/image", "get"),
                   "getSimilar": ("/products/{product_id}/similar", "get"),
                   "replaceProduct": ("/products/{product_id}", "put"),
                   "deleteProduct": ("/products/{product_id}", "delete")}


def product_links(id_at: str, *names: str) -> dict[str, Any]:
    """OpenAPI links from an answer to the product routes `names` (`_PRODUCT_ROUTES`), which take the product's id
    found at `id_at` in the answer: so a client, or a stateful test, can follow a product from its write to its reads,
    its replacement and its removal."""
    return {name: {"operationRef": _operation_ref(*_PRODUCT_ROUTES[name]),
                   "parameters": {"product_id": f"$response.body#{id_at}"}} for name in names}


def _operation_ref(path: str, method: str) -> str:
    """A JSON pointer to an operation in the schema, as a URI fragment (RFC 6901: '/' is '~1'; braces escaped)."""
    pointer = path.replace("~", "~0").replace("/", "~1").replace("{", "%7B").replace("}", "%7D")
    return f"#/paths/{pointer}/{method}"


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


GarmentKind = Literal[KINDS]  # type: ignore[valid-type]


class RegionOut(BaseModel):
    """One garment found in a photo of a person, and the products most like it."""

    kind: GarmentKind = Field(description="what kind of garment: " + ", ".join(KINDS))
    box: list[int] = Field(min_length=4, max_length=4, description="[x0, y0, x1, y1] in the photo's pixels (upright, "
                                                                    "as EXIF says), x0 < x1, y0 < y1")
    score: float = Field(ge=0, le=1, description="how probable the classifier finds this kind of garment, 0-1")
    results: list[MatchOut]
    notice: str | None = Field(None, description="as the answer's `notice`, for this garment's search")


class RecommendationsOut(BaseModel):
    """The answer to one query, nearest product first."""

    model: str
    colour_weight: float = Field(description="how much colour counted, 0 (shape only) to 1 (the strongest setting)")
    results: list[MatchOut]
    notice: str | None = Field(None, description="set when a filter matched nothing: the filter, and the values "
                                                 "its column has (or that the filters together allow no product)")
    region: GarmentKind | None = Field(None, description="for a photo of a person: the garment whose answers "
                                                          "`results` are (the `region` asked, else the most probable)")
    regions: list[RegionOut] = Field(default_factory=list, description="for a photo of a person: each garment found, "
                                     "most probable first, with its own answers; empty for a product photo")


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
