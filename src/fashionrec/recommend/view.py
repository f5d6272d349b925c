"""One snapshot of the catalog with its search backend, and the queries over them (what a `Recommender` holds)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import cached_property

import numpy as np
from PIL import Image

from fashionrec.catalog.catalog import Catalog
from fashionrec.config import (
    REGION_KIND_COLUMN,
    REGION_KIND_VALUES,
    REGION_LIMIT,
    REGION_MIN_SCORE,
    REGION_SAME_PHOTO,
    REGION_SAME_PHOTO_RAW,
    REGION_SKIN_SHARE,
    Settings,
)
from fashionrec.errors import CatalogError, FashionrecError
from fashionrec.imaging.decode import ImageSource, PixelLimits
from fashionrec.imaging.people import skin_share
from fashionrec.index.read import (
    Picture,
    decode_picture,
    decode_query,
    in_catalog_look,
    query_draft_size,
    read_picture,
)
from fashionrec.models.embed import Embedder
from fashionrec.models.garments import KINDS, Garment, find_garments
from fashionrec.recommend.answers import (
    DEFAULT_K,
    Match,
    PairScores,
    Recommendations,
    RegionAnswer,
    catalog_pair_scores,
    raw_cosines,
    sample_positions,
)
from fashionrec.recommend.filters import Filters, MetadataFilters
from fashionrec.recommend.query import ColourGain, check_k, colour_gain, shortlist_size
from fashionrec.search.backend import Neighbours, Restriction, SearchBackend
from fashionrec.search.dedupe import distinct_rows
from fashionrec.search.exact import exact_search, rank_rows


class View:
    """One snapshot of the catalog, its search backend, and the queries over them (what `Recommender` holds)."""

    def __init__(self, catalog: Catalog, embedder: Embedder, backend: SearchBackend, settings: Settings,
                 match_queries: bool) -> None:
        self.catalog = catalog
        self.embedder = embedder
        self.backend = backend
        self._filters = MetadataFilters(catalog)
        self._query_limits = PixelLimits.for_uploads(settings)  # a query photo is an upload: its lower limits
        self._query_size = catalog.typical_image_size if match_queries else None
        self._settings = settings
        # Raw pooled features are all alike (nearest-neighbour cosines around 0.99), so near copies are told
        # apart only in a whitened catalog; exact copies (same file content) always are.
        self._duplicate_cosine = settings.duplicate_cosine if catalog.whitening else np.inf

    def _search(self, query: np.ndarray, k: int, allowed: Restriction, gain: ColourGain) -> Neighbours:
        """k nearest allowed rows, by the index in use; with colour, the best k of the products nearest in shape.

        Why a shortlist: a colour match among products of another kind is no answer (lip gloss for a pink handbag);
        the shape-only query is one every index answers, so one index serves every colour weight on every backend.
        """
        if not gain:
            return self._nearest(query, k, allowed)
        size = shortlist_size(len(self.catalog), 1)  # the same for every k: a wider search keeps the first results
        found = self._nearest(self.catalog.query_vector(query, 0.0), max(size, k), allowed)
        vectors = found.vectors if found.vectors is not None else self._rows(found.positions)
        order, _ = rank_rows(vectors[:size], found.positions[:size], query)
        # Past the shortlist (k larger than it), the results go on in shape order, as in `search.block`.
        rest = np.arange(len(order), len(found.positions))
        order = np.concatenate([order, rest])[:k]
        distances = np.linalg.norm(vectors[order] - query[None, :], axis=1).astype(np.float32)
        kept = found.vectors[order] if found.vectors is not None else None
        return Neighbours(found.positions[order], distances, kept)

    @cached_property
    def _pairs(self) -> PairScores:
        """The scores of the catalog's sample of pairs that the figure of a match is read against (once a snapshot)."""
        vectors = self._rows(sample_positions(self.catalog.content_hashes))
        return catalog_pair_scores(self.catalog.shape_part, self.catalog.colour_dim, vectors)

    def _rows(self, positions: np.ndarray) -> np.ndarray:
        """Search vectors of catalog rows: from memory when loaded, else from the backend when it keeps them (the
        compact index's floats: this very snapshot's, however far the catalog has moved on since), else read (a
        server searching Milvus)."""
        if len(positions) == 0:  # never load the catalog's vectors for no rows
            return np.zeros((0, self.catalog.search_dim), dtype=np.float32)
        if self.catalog.vectors_loaded:
            return self.catalog.vectors[positions]
        if hasattr(self.backend, "rows"):
            return self.backend.rows(np.asarray(positions, dtype=np.int64))
        return self.catalog.read_search_vectors([self.catalog.ids[p] for p in positions.tolist()])

    def _nearest(self, query: np.ndarray, k: int, allowed: Restriction) -> Neighbours:
        """k nearest allowed rows to `query`, by the index in use."""
        found = self.backend.search(query, k, allowed)
        if len(found.positions) == min(k, allowed.count(len(self.catalog))) or self.backend.name != "hnsw":
            return found
        # A very selective filter can starve an approximate index's graph walk: answer that query exactly instead.
        return exact_search(self.catalog.vectors, query, k, allowed.mask)

    def by_image(self, image: ImageSource, k: int = DEFAULT_K, where: Filters | None = None,
                 show_duplicates: bool = False, colour_weight: float | None = None, region: str | None = None,
                 regions: bool = True) -> Recommendations:
        """See `Recommender.by_image`."""
        self._check(k)
        if region is not None and region not in KINDS:
            raise FashionrecError(f"unknown region {region!r}; choose one of: {', '.join(KINDS)}")
        asked, gain = colour_gain(colour_weight, self._settings, self.catalog.has_colour,
                                  products=len(self.catalog))
        photo = self._decode(image)
        picture = read_picture(photo, self.embedder.spec.preprocessing, self._query_size,
                               colour=self.catalog.has_colour)
        locate = regions and self.embedder.locates
        if locate:
            vectors, maps, log_norm = self.embedder.embed_and_locate(picture.pixels[None])
        else:
            vectors = self.embedder.embed_batch(picture.pixels[None])
        whole = self._picture_answer(vectors[0], picture, k, where, show_duplicates, gain)

        def nearest() -> Recommendations:  # the whole catalog's nearest, asked only of a photo with a person in it
            return whole if not where else self._picture_answer(vectors[0], picture, 1, None, True, gain)

        garments = self._garments(photo, picture.pixels, maps[0], float(log_norm[0]), nearest) if locate else []
        if not garments:
            why = ("the whole photo was asked for" if not regions else "this model cannot locate garments"
                   if not self.embedder.locates else "no garment regions in this photo")
            missing = f"{why}; the answers are for the whole photo" if region else None
            return replace(whole, colour_weight=asked, notice=_joined(whole.notice, missing))
        answers = self._region_answers(self._crop_source(image, photo), photo, garments, k, where, show_duplicates,
                                       gain)
        chosen = next((answer for answer in answers if answer.kind == region), answers[0])
        missing = (f"no {region} found in this photo; the answers are for the {chosen.kind}"
                   if region and chosen.kind != region else None)
        return Recommendations(model=whole.model, results=chosen.results, colour_weight=asked,
                               notice=_joined(chosen.notice, missing), regions=tuple(answers), region=chosen.kind)

    def _picture_answer(self, model_vector: np.ndarray, picture: Picture, k: int, where: Filters | None,
                        show_duplicates: bool, gain: ColourGain) -> Recommendations:
        """The answer to one embedded picture (a whole photo or a garment's crop)."""
        histogram = picture.colour.histogram if picture.colour is not None else None
        search_vector = self.catalog.search_vectors(model_vector[None], None if histogram is None else histogram[None])
        query = self.catalog.query_vector(search_vector[0], gain.weights)
        allowed = self._filters.allowed(where, exclude=None)
        found = self._answer(query, k, allowed, None if show_duplicates else (), gain)
        return replace(found, notice=self._filters.notice(where, allowed))

    def _garments(self, photo: Image.Image, pixels: np.ndarray, maps: np.ndarray, log_norm: float,
                  nearest: Callable[[], Recommendations]) -> list[Garment]:
        """The garments to answer for, when the photo shows a person (skin) wearing them; none for a packshot, or
        for the shop's own photo of a product (its nearest product as close as `REGION_SAME_PHOTO`). `nearest`
        answers the whole photo over the whole catalog: the shopper's filters may leave out the very product whose
        photo this is, which would then be answered per garment."""
        if skin_share(pixels, self.embedder.spec.preprocessing) < REGION_SKIN_SHARE:
            return []
        same_photo = REGION_SAME_PHOTO if self.catalog.whitening else REGION_SAME_PHOTO_RAW  # raw cosines run high
        closest = nearest().results
        if closest and closest[0].cosine >= same_photo:
            return []
        return find_garments(maps, log_norm, photo.size, REGION_MIN_SCORE, REGION_LIMIT)

    def _crop_source(self, image: ImageSource, photo: Image.Image) -> Image.Image:
        """The picture garments are cut from: the photo decoded at the model's own draft. A query decoded only as
        large as the catalog's look needs (`decode_query`) leaves a garment's crop too small to be brought to that
        look as a whole photo is (a 60x80 look: a shoe of a 192x256 decode); a person's photo pays a second model
        call for its crops anyway, so it pays a second decode too (measured on the 23 VITON-HD photos: 51 of 141
        crops went unmatched without it)."""
        prep = self.embedder.spec.preprocessing
        if query_draft_size(prep, self._query_size) == prep.draft_size:
            return photo
        return decode_picture(image, self._query_limits, prep)

    def _region_answers(self, source: Image.Image, photo: Image.Image, garments: list[Garment], k: int,
                        where: Filters | None, show_duplicates: bool, gain: ColourGain) -> list[RegionAnswer]:
        """Each garment's crop (cut from `source`, the boxes found on `photo`) answered, the crops embedded in one
        model call; each kept to products of its kind where the catalog says kinds (and the shopper did not filter
        kinds already)."""
        prep = self.embedder.spec.preprocessing
        pictures = [read_picture(source.crop(_scaled_box(g.box, photo.size, source.size)), prep, self._query_size,
                                 colour=self.catalog.has_colour) for g in garments]
        vectors = self.embedder.embed_batch(np.stack([picture.pixels for picture in pictures]))
        answers = []
        for garment, vector, picture in zip(garments, vectors, pictures):
            found = self._picture_answer(vector, picture, k, self._of_kind(where, garment.kind), show_duplicates, gain)
            answers.append(RegionAnswer(garment.kind, _in_full_size(garment.box, photo), round(garment.score, 4),
                                        found.results, found.notice))
        return answers

    def _of_kind(self, where: Filters | None, kind: str) -> Filters | None:
        """The shopper's filters, plus the garment's kind where the catalog's metadata has it."""
        if where and REGION_KIND_COLUMN in where:
            return where
        values = self._filters.present(REGION_KIND_COLUMN, REGION_KIND_VALUES.get(kind, ()))
        if not values:
            return where
        of_kind = {**(where or {}), REGION_KIND_COLUMN: values}
        # Never the kind against the shopper's own filters (articleType=Jeans and a top): theirs win.
        return of_kind if self._filters.allowed(of_kind, exclude=None).count(len(self.catalog)) else where

    def _decode(self, image: ImageSource) -> Image.Image:
        """The query photo decoded, upright, RGB, no larger than its use needs (an upload: the upload pixel limits
        apply)."""
        return decode_query(image, self._query_limits, self.embedder.spec.preprocessing, self._query_size)

    def query_image(self, image: ImageSource) -> Image.Image:
        """The query as the model will see it: decoded, upright, RGB, matched to the catalog's look.

        Raises:
            ImageError: the image cannot be used.
        """
        return in_catalog_look(self._decode(image), self._query_size)

    def by_id(self, product_id: str, k: int = DEFAULT_K, where: Filters | None = None,
              show_duplicates: bool = False, colour_weight: float | None = None) -> Recommendations:
        """See `Recommender.by_id`."""
        self._check(k)
        asked, gain = colour_gain(colour_weight, self._settings, self.catalog.has_colour,
                                  products=len(self.catalog))
        position = self.catalog.position(str(product_id))
        allowed = self._filters.allowed(where, exclude=position)
        query = self.catalog.query_vector(self.backend.vector(position), gain.weights)
        found = self._answer(query, k, allowed, None if show_duplicates else (position,), gain)
        return replace(found, notice=self._filters.notice(where, allowed), colour_weight=asked)

    def _check(self, k: int) -> None:
        """Refuse a k below 1 and an empty catalog, with messages a user can act on."""
        check_k(k)
        if len(self.catalog) == 0:
            raise CatalogError(f"the catalog {self.catalog.catalog_dir} is empty: index some images first")

    def _answer(self, query: np.ndarray, k: int, allowed: Restriction,
                seen: tuple[int, ...] | None, gain: ColourGain) -> Recommendations:
        """Search and turn rows into `Match`es; `seen`: None keeps duplicates, else rows already 'shown'."""
        found = (self._search(query, k, allowed, gain) if seen is None
                 else self._distinct(query, k, allowed, seen, gain))
        if found.vectors is not None:
            vectors = found.vectors
        elif len(found.positions):
            vectors = self.catalog.vectors[found.positions]
        else:  # nothing found: never read the catalog's vectors for it (a server searching Milvus has none loaded)
            vectors = np.zeros((0, query.shape[-1]), dtype=np.float32)
        inner = vectors @ query
        similarities, cosines = self._pairs.figures(inner, gain), raw_cosines(inner, gain)
        results = [
            Match(
                id=self.catalog.ids[position],
                distance=float(distance),
                image=str(self.catalog.image_path_at(position)),
                metadata=dict(self.catalog.metadata_at(position)),
                similarity=float(similarity),
                colours=self.catalog.swatches_at(position),
                cosine=float(cosine),
            )
            for position, distance, similarity, cosine in zip(found.positions.tolist(), found.distances.tolist(),
                                                              similarities.tolist(), cosines.tolist())
        ]
        return Recommendations(model=self.catalog.model_name, results=results)

    def _distinct(self, query: np.ndarray, k: int, allowed: Restriction, seen: tuple[int, ...],
                  gain: ColourGain) -> Neighbours:
        """The k nearest with one product per duplicate group, widening the search until k are found.

        `seen` holds the query product's row ("more like this"), whose vector is the query itself.
        """
        hashes = self.catalog.content_hashes
        available = allowed.count(len(self.catalog))
        if available == 0:
            return Neighbours(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))  # nothing allowed
        fetch = k
        while True:
            fetch = min(2 * fetch + 8, available)
            found = self._search(query, fetch, allowed, gain)
            keep = distinct_rows(found.positions, hashes, self._vectors_of(found), k, self._duplicate_cosine,
                                 seen_hashes=[hashes[p] for p in seen],
                                 seen_vectors=self.catalog.look_part(query) if seen else None)
            if len(keep) == k or fetch >= available:
                kept_vectors = found.vectors[keep] if found.vectors is not None else None
                return Neighbours(found.positions[keep], found.distances[keep], kept_vectors)

    def _vectors_of(self, found: Neighbours) -> Mapping[int, np.ndarray] | np.ndarray:
        """The found rows' look vectors (`Catalog.look_part`) for near-duplicate checks: from the vectors the backend
        returned, else from the catalog's (read only when near copies are looked for at all)."""
        if found.vectors is not None:
            return dict(zip(found.positions.tolist(), self.catalog.look_part(found.vectors)))
        if not np.isfinite(self._duplicate_cosine):
            return {}
        plain = self.catalog.tuning is None and not self.catalog.colour_dim  # search vectors are look vectors
        return self.catalog.vectors if plain else _LookRows(self.catalog)


class _LookRows(Mapping):
    """The catalog's look vectors, row by row, computed when asked (no copy of the whole matrix)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def __getitem__(self, position: int) -> np.ndarray:
        return self._catalog.look_part(self._catalog.vectors[position])

    def __len__(self) -> int:
        return len(self._catalog)

    def __iter__(self):
        return iter(range(len(self._catalog)))


def _scaled_box(box: tuple[int, int, int, int], found_on: tuple[int, int],
                size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box found on a picture of size `found_on`, on the same picture at `size` (another decode of the photo, or
    the photo itself); the same box when the sizes are equal."""
    if found_on == size:
        return box
    (width, height), (sx, sy) = size, (size[0] / found_on[0], size[1] / found_on[1])
    x0, y0, x1, y1 = box
    return (round(x0 * sx), round(y0 * sy), min(width, round(x1 * sx)), min(height, round(y1 * sy)))


def _in_full_size(box: tuple[int, int, int, int], photo: Image.Image) -> tuple[int, int, int, int]:
    """A box on the decoded (maybe reduced) photo in the uploaded photo's own upright pixels."""
    return _scaled_box(box, photo.size, photo.info.get("full_size", photo.size))


def _joined(*notices: str | None) -> str | None:
    """Notices joined into one, or None when there are none."""
    present = [notice for notice in notices if notice]
    return "; ".join(present) if present else None
