"""THE path from an image to what the catalog stores of it, and what a query is compared with.

A picture is decoded as the model's recipe allows (`decode_picture`: a JPEG at reduced scale when the recipe permits
it, within the caller's pixel limits; a query or a live write's photo no larger than the catalog's look needs,
`decode_query`), optionally brought to the catalog's look, and read into the model's input and its colour
(`read_picture`). Indexing (`read_image`, per file, in-process or on Ray), live writes (`index.write`), the
colour backfill (`read_colour`) and queries (`recommend.view`) all go through these, so one file gives the same
pixels and the same colour wherever it is read as the same kind of picture. One exception: a product written live
with a photo much larger than the catalog's look is decoded as a query (smaller), and a colour backfill would decode it
at the model's draft: a slightly different colour (histogram L1 about 0.05), only after a colour version change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fashionrec.config import QUERY_DRAFT_LOOK
from fashionrec.errors import ImageError
from fashionrec.imaging.colour import ColourDescriptor
from fashionrec.imaging.colour import describe as describe_colour
from fashionrec.imaging.decode import ImageSource, PixelLimits, open_image, read_image_bytes
from fashionrec.imaging.look import match_catalog_look
from fashionrec.imaging.preprocess import Preprocessing, preprocess
from fashionrec.index.plan import ImageFile


@dataclass(frozen=True)
class Picture:
    """What one picture gives: the model's input and (when asked) its colour."""

    pixels: np.ndarray  # (3, size, size) float32, as the model's `Preprocessing` says
    colour: ColourDescriptor | None


@dataclass(frozen=True)
class ReadResult:
    """One file after the reader: decoded input, or the reason it failed, or 'same content as before'."""

    file: ImageFile
    sha256: str = ""
    pixels: np.ndarray | None = None
    error: str | None = None
    colour: ColourDescriptor | None = None


def decode_picture(source: ImageSource, limits: int | PixelLimits, prep: Preprocessing) -> Image.Image:
    """The picture decoded upright, RGB, reduced by a whole factor where the model's recipe allows it.

    Raises:
        ImageError: as `imaging.decode.open_image`.
    """
    return open_image(source, limits, draft_size=prep.draft_size)


def decode_query(source: ImageSource, limits: int | PixelLimits, prep: Preprocessing,
                 look: tuple[int, int] | None) -> Image.Image:
    """A query photo decoded as `decode_picture` does, but no larger than its use needs: a photo brought to the
    catalog's `look` is resampled down to it anyway, so it decodes at the scale that keeps both sides at least
    `QUERY_DRAFT_LOOK` times the look's longer side (a 1800x2400 JPEG at 1/8 for a 60x80 look: half the decode and
    a twentieth of the resampling; as close to the photo decoded in full as the model's own draft, measured).

    Raises:
        ImageError: as `decode_picture`.
    """
    return open_image(source, limits, draft_size=query_draft_size(prep, look))


def query_draft_size(prep: Preprocessing, look: tuple[int, int] | None) -> int | None:
    """The draft size of a query photo (`decode_query`): the model's, or less where the catalog's look needs less.

    Why the longer side: the decoded photo then has over twice the look's pixels whatever its shape, so it is always
    brought to the look (`imaging.look.match_catalog_look`), as it was when decoded larger."""
    if prep.draft_size is None or look is None:
        return prep.draft_size
    return min(prep.draft_size, QUERY_DRAFT_LOOK * max(look))


def in_catalog_look(image: Image.Image, look: tuple[int, int] | None) -> Image.Image:
    """The picture as the model sees it: brought to the catalog's look (its typical size) when `look` is given."""
    return match_catalog_look(image, look) if look else image


def read_picture(image: Image.Image, prep: Preprocessing, look: tuple[int, int] | None = None,
                 colour: bool = True) -> Picture:
    """A decoded picture to the model's input (in the catalog's `look`, when given) and its colour (of the picture as
    decoded: the colour is computed on a small thumbnail, whatever the look)."""
    return Picture(preprocess(in_catalog_look(image, look), prep), describe_colour(image) if colour else None)


def read_colour(source: ImageSource, limits: int | PixelLimits, prep: Preprocessing) -> ColourDescriptor:
    """Only the colour of a picture, decoded as indexing decodes it (the backfill of products without one).

    Raises:
        ImageError: as `decode_picture`.
    """
    return describe_colour(decode_picture(source, limits, prep))


def read_image(
    file: ImageFile, images_dir: Path, prep: Preprocessing, max_pixels: int, known_sha256: str | None = None
) -> ReadResult:
    """Read, hash and decode one file; never raises for a bad file (the error is in the result).

    `known_sha256` is the content hash the catalog holds for this product, if any: a file with that content
    again (touched, not changed) is not decoded, and keeps its vector.
    """
    try:
        data = read_image_bytes(images_dir / file.stamp.path)
    except ImageError as exc:
        return ReadResult(file, error=str(exc))
    sha256 = hashlib.sha256(data).hexdigest()
    if known_sha256 == sha256:
        return ReadResult(file, sha256=sha256)  # touched, not changed: keep the vector
    try:
        picture = read_picture(decode_picture(data, max_pixels, prep), prep)
        return ReadResult(file, sha256=sha256, pixels=picture.pixels, colour=picture.colour)
    except ImageError as exc:
        return ReadResult(file, sha256=sha256, error=str(exc))
