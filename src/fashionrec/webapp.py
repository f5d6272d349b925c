"""The shop-window web app (Streamlit): upload a photo or pick a product, see the most similar products.

A thin face over `Recommender`: the page only turns widgets into a query and matches into a grid. The
model and catalog load once per process (`st.cache_resource`), not per interaction. Streamlit runs this
file as a script: start it with `fashionrec app --catalog DIR`, which sets FASHIONREC_CATALOG.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import streamlit as st
from PIL import Image, ImageDraw, ImageFont
from streamlit_image_coordinates import streamlit_image_coordinates

from fashionrec.catalog.catalog import Catalog
from fashionrec.config import Settings, load_settings
from fashionrec.errors import FashionrecError
from fashionrec.imaging.decode import PixelLimits, open_image
from fashionrec.imaging.formats import IMAGE_SUFFIXES
from fashionrec.recommend.answers import (
    DEFAULT_K,
    SIMILARITY_MEANING,
    Match,
    Recommendations,
    RegionAnswer,
    percent,
)
from fashionrec.recommend.recommender import Recommender

GRID_COLUMNS = 5
COLUMNS, PEOPLE_COLUMNS = (1, 4), (2, 3)  # the query's and the results' shares of the page: a photo of people's
# boxes and labels need the wider query column
MAX_K_SLIDER = 20
PREVIEW_PIXELS = 480  # the query photo is shown at most this wide
UPLOAD_TYPES = sorted(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)  # the formats imaging/ decodes
FIRST_FILTERS = ("gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "usage")
MODES = ("Upload a photo", "Pick a product", "Try an example photo")
# Each garment kind's box colour on the photo (`recommend.view` finds these kinds); another kind gets the last one.
KIND_COLOURS = {"top": "#e4572e", "bottom": "#1f77b4", "dress": "#9c27b0", "shoes": "#2a9d3f", "bag": "#b8860b",
                "": "#555555"}
CHOSEN_LINE, OTHER_LINE = 5, 2  # box line widths in preview pixels: the chosen garment's, the others'
LABEL_PIXELS = 20  # the kind's label, in preview pixels
GARMENT_KEY = "garment"  # the choice of garment (a widget key)
TAP_KEY = "garment-tap"  # the last tap on the boxed photo (a widget key)
GARMENT_PHOTO_STATE = "garment-photo"  # the photo that choice was made for (another photo starts afresh)
ANSWER_STATE = "answer"  # the last photo query and its answer (session state)


@dataclass(frozen=True)
class Query:
    """What the shopper asked with: a label for the page, the picture to show, and how to answer it."""

    title: str
    picture: Image.Image | str
    product_id: str | None  # set for "more like this" queries
    photo: bytes | Path | None  # set for photo queries


@st.cache_resource(show_spinner="Loading the model and the catalog...")
def load_recommender(catalog_dir: str) -> Recommender:
    """The one `Recommender` of this process (model session and catalog vectors in memory)."""
    recommender = Recommender(Catalog.open(catalog_dir))
    recommender.follow()  # products indexed, added or removed while the app runs show up within seconds
    return recommender


def main() -> None:
    """Draw the page for the current widget state."""
    st.set_page_config(page_title="fashionrec: more like this", page_icon=":dress:", layout="wide")
    settings = load_settings()
    if settings.catalog_dir is None:
        st.error("No catalog to show. Start the app with: fashionrec app --catalog CATALOG_DIR")
        return
    try:
        recommender = load_recommender(str(settings.catalog_dir))
    except FashionrecError as exc:
        st.error(f"The catalog cannot be opened: {exc}")
        return
    st.title("More like this")
    options = _sidebar(recommender, settings)
    query = _ask(recommender, settings)
    if query is None:
        st.info("Upload a photo of a fashion product, or pick one from the catalog, to see similar products.")
        return
    _show(recommender, query, options, settings)


@dataclass(frozen=True)
class Options:
    """What the sidebar asks for."""

    k: int
    where: dict[str, list[str]]
    show_duplicates: bool
    colour_weight: float


_HEX = re.compile(r"#[0-9a-f]{6}")


def _sidebar(recommender: Recommender, settings: Settings) -> Options:
    """k, duplicates and the metadata filters, plus what the app is serving."""
    catalog = recommender.catalog
    with st.sidebar:
        st.header("Results")
        k = st.slider("How many products", 1, min(MAX_K_SLIDER, settings.max_k), min(DEFAULT_K, settings.max_k),
                      key="k")
        colour_weight = st.slider("Match colour", 0.0, 1.0, settings.colour_weight, 0.01, key="colour-weight",
                                  help="How much the product's colour counts beside its shape: 0 finds the cut in any "
                                       "colour, 1 puts products of the same colour first.",
                                  disabled=not catalog.has_colour)
        show_duplicates = st.checkbox("Show duplicate images", key="show-duplicates",
                                      help="By default a product photographed with the same image is shown once.")
        facets = catalog.facets()
        if facets:
            st.header("Filters")
        where: dict[str, list[str]] = {}
        for column in sorted(facets, key=_filter_order):
            chosen = st.multiselect(column, facets[column], key=f"filter-{column}", placeholder="any")
            if chosen:
                where[column] = chosen
        st.header("Catalog")
        st.caption(f"{len(catalog):,} products · model {catalog.model_name} ({catalog.dim}-d vectors)")
        st.caption(f"{catalog.catalog_dir}")
    return Options(k, where, show_duplicates, colour_weight)


def _filter_order(column: str) -> tuple[int, str]:
    """The usual shop facets first, in shop order; the other columns after them by name."""
    return (FIRST_FILTERS.index(column) if column in FIRST_FILTERS else len(FIRST_FILTERS), column.lower())


def _ask(recommender: Recommender, settings: Settings) -> Query | None:
    """The query the widgets describe, or None while there is none."""
    examples = _examples(settings)
    modes = list(MODES if examples else MODES[:2])
    mode = st.radio("Search by", modes, horizontal=True, key="mode", label_visibility="collapsed")
    if mode == MODES[0]:
        return _upload_query(settings)
    if mode == MODES[1]:
        return _product_query(recommender.catalog)
    chosen = st.selectbox("Example photo", examples, format_func=lambda path: path.name, key="example")
    return Query(f"Example photo {chosen.name}", str(chosen), None, chosen) if chosen else None


def _upload_query(settings: Settings) -> Query | None:
    """A photo from the shopper's device; an unusable one is reported, not raised."""
    limit_mb = max(1, math.ceil(settings.max_upload_bytes / 1_000_000))
    upload = st.file_uploader("Upload a photo of a fashion product", type=UPLOAD_TYPES, key="upload",
                              max_upload_size=limit_mb)
    if upload is None:
        return None
    data = upload.getvalue()
    if len(data) > settings.max_upload_bytes:
        st.error(f"This photo is too large ({len(data) / 1_000_000:.1f} MB); the limit is {limit_mb} MB.")
        return None
    try:  # the preview obeys the upload rule (a JPEG decodes at reduced scale, as the query will)
        picture = open_image(data, PixelLimits.for_uploads(settings), draft_size=2 * PREVIEW_PIXELS)
    except FashionrecError as exc:
        st.error(f"This file cannot be used as a photo: {exc}.")  # every such message names the way out
        return None
    picture.thumbnail((PREVIEW_PIXELS, PREVIEW_PIXELS * 2))
    return Query(f"Your photo ({upload.name})", picture, None, data)


def _product_query(catalog: Catalog) -> Query | None:
    """A catalog product chosen in a searchable list (or by "more like this")."""
    product_id = st.selectbox("Product", catalog.ids, index=None, key="product", placeholder="Type an id or a name",
                              format_func=lambda pid: _label(pid, catalog.metadata(pid)))
    if product_id is None:
        return None
    return Query(_label(product_id, catalog.metadata(product_id)), str(catalog.image_path(product_id)), product_id,
                 None)


def _examples(settings: Settings) -> list[Path]:
    """Example photos offered by the demo (FASHIONREC_EXAMPLES), if any."""
    folder = settings.examples_dir
    if folder is None or not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.suffix.lower().lstrip(".") in UPLOAD_TYPES)


def _show(recommender: Recommender, query: Query, options: Options, settings: Settings) -> None:
    """The query beside its results. A photo of a person shows its garments' boxes (in a wider column, to be read)
    and a choice of garment: the results are the chosen garment's."""
    try:
        found, problem = _answer(recommender, query, options), None
    except FashionrecError as exc:
        found, problem = None, exc
    people = found is not None and bool(found.regions)
    query_column, results_column = st.columns(PEOPLE_COLUMNS if people else COLUMNS, gap="large")
    with query_column:
        st.subheader("Query")
        chosen = _choose_garment(recommender, query, found, settings) if found and people else None
        if chosen is None:
            st.image(query.picture, caption=query.title, width="stretch")
    with results_column:
        if found is None:
            st.error(f"No recommendations: {problem}")
        else:
            _grid(found if chosen is None else _of_region(found, chosen))


def _answer(recommender: Recommender, query: Query, options: Options) -> Recommendations:
    """The answer to the query. A photo's answer is kept in the session (the last one only): it holds every
    garment's results, so choosing another garment redraws the page without running the model again.

    Raises:
        FashionrecError: as `Recommender.by_image` and `Recommender.by_id`.
    """
    ask = {"k": options.k, "where": options.where, "show_duplicates": options.show_duplicates,
           "colour_weight": options.colour_weight}
    if query.product_id:
        return recommender.by_id(query.product_id, **ask)
    assert query.photo is not None  # a query is a product or a photo
    asked = (_photo_key(query.photo), recommender.catalog.generation, repr(sorted(ask.items())))
    kept = st.session_state.get(ANSWER_STATE)
    if kept is not None and kept[0] == asked:
        return kept[1]
    found = recommender.by_image(query.photo, **ask)
    st.session_state[ANSWER_STATE] = (asked, found)
    return found


def _photo_key(photo: bytes | Path) -> str:
    """What tells one query photo from another: an upload by its content, an example photo by its path."""
    return hashlib.sha256(photo).hexdigest() if isinstance(photo, bytes) else str(photo)


def _choose_garment(recommender: Recommender, query: Query, found: Recommendations,
                    settings: Settings) -> RegionAnswer | None:
    """The photo with its garments' boxes, where a tap chooses a garment, and the same choice as one option per
    garment below it (for keyboards and screen readers); returns the chosen garment (the most probable one until
    the shopper chooses, and again for each new photo). None, and the plain preview, if the photo cannot be decoded
    again (it just was, for the answer)."""
    try:  # upright, at the model's draft; the boxes are in the photo's own pixels, scaled by its full size
        photo = open_image(query.photo, PixelLimits.for_uploads(settings),
                           draft_size=recommender.embedder.spec.preprocessing.draft_size)
    except FashionrecError:
        return None
    kinds = [region.kind for region in found.regions]
    photo_key = _photo_key(query.photo)
    if st.session_state.get(GARMENT_PHOTO_STATE) != photo_key or st.session_state.get(GARMENT_KEY) not in kinds:
        st.session_state[GARMENT_PHOTO_STATE] = photo_key  # a new photo starts at its most probable garment
        st.session_state[GARMENT_KEY] = found.region if found.region in kinds else kinds[0]
    chosen = found.regions[kinds.index(st.session_state[GARMENT_KEY])]  # as the radio below will show it
    picture = _boxed(photo, found.regions, chosen)
    # The component sizes its frame to the picture once, as it loads: the frame keeps the picture's shape instead, so
    # a wider or narrower window neither cuts the picture off nor leaves a gap under it.
    st.html(f"<style>.st-key-{TAP_KEY} iframe {{height: auto; aspect-ratio: {picture.width} / {picture.height}}}</style>")
    with st.container(key="garments"):
        streamlit_image_coordinates(picture, width="stretch", key=TAP_KEY, png_compression_level=6, cursor="pointer",
                                    on_click=partial(_tapped, found.regions, photo.info.get("full_size", photo.size)))
        st.caption(f"{query.title} · found: {', '.join(kinds)} · tap a garment to choose it")
        st.radio("Which garment?", kinds, key=GARMENT_KEY, horizontal=True,
                 help="The garments found in your photo: the results are products like the one chosen.")
    return chosen


def _tapped(regions: tuple[RegionAnswer, ...], size: tuple[int, int]) -> None:
    """Choose the garment tapped on the boxed photo of `size` pixels (a callback: it runs before the page is drawn
    again, so the radio shows the choice). The tap is in the pixels of the picture as shown, of its shown size."""
    tap = st.session_state.get(TAP_KEY)
    if not tap or not tap.get("width") or not tap.get("height"):
        return
    tapped = _garment_at(regions, tap["x"] * size[0] / tap["width"], tap["y"] * size[1] / tap["height"])
    if tapped is not None:  # a tap outside every box changes nothing
        st.session_state[GARMENT_KEY] = tapped.kind


def _garment_at(regions: tuple[RegionAnswer, ...], x: float, y: float) -> RegionAnswer | None:
    """The garment whose box holds the photo's point (x, y), the smallest if boxes nest; None outside every box."""
    holding = [region for region in regions
               if region.box[0] <= x <= region.box[2] and region.box[1] <= y <= region.box[3]]
    return min(holding, key=lambda region: (region.box[2] - region.box[0]) * (region.box[3] - region.box[1]),
               default=None)


def _of_region(found: Recommendations, region: RegionAnswer) -> Recommendations:
    """The answer as the grid shows it for one garment: that garment's results and notice."""
    return replace(found, results=region.results, notice=region.notice, region=region.kind)


def _boxed(photo: Image.Image, regions: tuple[RegionAnswer, ...], chosen: RegionAnswer) -> Image.Image:
    """The photo at preview size with each garment's box and kind drawn in the kind's colour; the chosen one thick,
    drawn last (on top), its label filled. Labels go on after every box, so no line crosses one."""
    scale = min(PREVIEW_PIXELS / photo.width, 2 * PREVIEW_PIXELS / photo.height)
    boxes_scale = scale * photo.width / photo.info.get("full_size", photo.size)[0]  # boxes: the photo's own pixels
    picture = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
                           Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(picture)
    ordered = sorted(regions, key=lambda region: region is chosen)
    corners = []
    for region in ordered:
        x0, y0, x1, y1 = (round(value * boxes_scale) for value in region.box)
        line = CHOSEN_LINE if region is chosen else OTHER_LINE
        draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=_colour(region), width=line)
        corners.append((x0 + line + 3, y0 + line + 1))
    font = ImageFont.load_default(size=LABEL_PIXELS)
    labels: list[tuple[int, int, int, int]] = []
    for region, corner in zip(ordered, corners):
        label = _free_place(draw.textbbox(corner, region.kind, font=font, anchor="lt"), labels)
        colour = _colour(region)
        draw.rectangle((label[0] - 3, label[1] - 2, label[2] + 3, label[3] + 2), outline=colour,
                       fill=colour if region is chosen else "white")
        draw.text(label[:2], region.kind, font=font, anchor="lt", fill="white" if region is chosen else colour)
        labels.append(label)
    return picture


def _colour(region: RegionAnswer) -> str:
    """The colour of a garment's box and label."""
    return KIND_COLOURS.get(region.kind, KIND_COLOURS[""])


def _free_place(label: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """The label's box moved down until it covers no label drawn before it (boxes of garments often share a
    corner)."""
    x0, y0, x1, y1 = label
    while any(x0 < t[2] + 6 and t[0] < x1 + 6 and y0 < t[3] + 3 and t[1] < y1 + 3 for t in taken):
        y0, y1 = y0 + (y1 - y0) + 4, y1 + (y1 - y0) + 4
    return x0, y0, x1, y1


def _grid(found: Recommendations) -> None:
    """Result cards: image, name, article type, colour, similarity, and a "more like this" button."""
    if not found.results:
        st.info(f"No product to show: {found.notice}" if found.notice
                else "No product matches these filters. Remove a filter to see more.")
        return
    products = "product" if len(found.results) == 1 else "products"
    st.subheader(f"{len(found.results)} {products} like the {found.region}" if found.region
                 else f"{len(found.results)} similar {products}")
    with st.container(key="results"):
        for start in range(0, len(found.results), GRID_COLUMNS):
            for column, match in zip(st.columns(GRID_COLUMNS), found.results[start:start + GRID_COLUMNS]):
                with column:
                    _card(match)


def _card(match: Match) -> None:
    """One recommended product."""
    name = match.metadata.get("productDisplayName") or f"Product {match.id}"
    if Path(match.image).is_file():
        st.image(match.image, width="stretch")
    else:
        st.warning("image missing")
    st.markdown(f"**{name}**")
    details = [value for value in (match.metadata.get("articleType"), match.metadata.get("baseColour")) if value]
    st.caption(" · ".join([*details, f"similarity {percent(match.similarity)}", f"id {match.id}"]),
               help=SIMILARITY_MEANING)
    if match.colours:
        st.markdown(_swatches_html(match.colours), unsafe_allow_html=True)
    st.button("More like this", key=f"more-{match.id}", on_click=_more_like, args=(match.id,))


def _swatches_html(colours: list[dict]) -> str:
    """The product's dominant colours as a row of swatches, each as wide as its share (hex values only: they come
    from the catalog's own computation, never from user text)."""
    cells = "".join(
        f'<span title="{c["rgb"]} · {c["share"]:.0%}" style="display:inline-block;height:14px;'
        f'width:{max(8, round(120 * c["share"]))}px;background:{c["rgb"]};border:1px solid #ccc;'
        f'margin-right:2px;border-radius:3px"></span>'
        for c in colours if _HEX.fullmatch(str(c.get("rgb", ""))))
    return f'<div class="swatches" data-testid="swatches">{cells}</div>'


def _more_like(product_id: str) -> None:
    """Make a result the query (a callback: runs before the page is drawn again)."""
    st.session_state["mode"] = MODES[1]
    st.session_state["product"] = product_id


def _label(product_id: str, metadata: dict[str, str | None]) -> str:
    """How a product is named in lists."""
    name = metadata.get("productDisplayName")
    return f"{product_id} · {name}" if name else product_id


if __name__ == "__main__":
    main()
