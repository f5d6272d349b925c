"""webapp.py: the page's logic through Streamlit's AppTest (the real browser test is tests/test_webapp_browser.py)."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from fashionrec.catalog.catalog import Catalog
from fashionrec.config import load_settings
from fashionrec.imaging.decode import open_image
from fashionrec.launch import WEBAPP_SCRIPT
from fashionrec.recommend.answers import SIMILARITY_MEANING, Match, Recommendations, RegionAnswer
from fashionrec.recommend.recommender import Recommender
from tests.conftest import draw_product, shop_metadata
from tests.image_corpus import BLUE, RED, corrupt_exif_jpeg, png_bomb, psd_file
from tests.reference import catalog_arrays, more_like

TIMEOUT = 120


@pytest.fixture
def app(shop_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("FASHIONREC_CATALOG", str(shop_catalog))
    monkeypatch.delenv("FASHIONREC_EXAMPLES", raising=False)
    return AppTest.from_file(str(WEBAPP_SCRIPT), default_timeout=TIMEOUT).run()


def png(product_id: int) -> bytes:
    buffer = io.BytesIO()
    draw_product(product_id).save(buffer, "PNG")
    return buffer.getvalue()


def result_ids(app: AppTest) -> list[str]:
    """Product ids of the result cards, in order (from their "more like this" buttons)."""
    return [button.key.removeprefix("more-") for button in app.button if button.key.startswith("more-")]


def test_first_page_invites_a_query_and_shows_the_catalog(app: AppTest) -> None:
    assert not app.exception and not app.error
    assert "Upload a photo" in app.info[0].value
    assert app.radio(key="mode").options == ["Upload a photo", "Pick a product"]
    assert [m.label for m in app.sidebar.multiselect] == ["gender", "articleType", "baseColour"]
    assert app.sidebar.caption[0].value == "40 products · model efficientnet-lite0 (1712-d vectors)"
    assert app.sidebar.slider(key="k").value == 5


def test_an_uploaded_photo_gets_k_results_with_its_product_first(app: AppTest, shop_catalog: Path) -> None:
    app.file_uploader(key="upload").upload("mine.png", png(11), "image/png").run()
    assert not app.exception and not app.error
    ids = result_ids(app)
    assert len(ids) == 5 and ids[0] == "11"
    assert len(app.get("image")) == 1 + 5  # the query and the results
    assert app.markdown[0].value == "**Drawn product 11**"
    caption = app.caption[0].value  # "Tshirts · White · similarity 98.7% · id 11"
    assert caption.startswith("Tshirts · White · similarity ") and caption.endswith(" · id 11")
    recommender = Recommender(Catalog.open(shop_catalog))
    expected = recommender.by_image(png(11), k=5).results
    shown = [c.value.split(" · similarity ")[1].split(" · ")[0] for c in app.caption[:5]]
    assert shown == [f"{m.similarity:.2%}" for m in expected]  # the CLI's and the API's figure
    assert app.caption[0].help == SIMILARITY_MEANING
    assert "garment" not in [radio.key for radio in app.radio]  # a product photo: no garments to choose from
    app.sidebar.slider(key="k").set_value(8).run()
    assert len(result_ids(app)) == 8


@pytest.mark.parametrize("name, data, message", [
    ("notes.jpg", b"this is not a photo", "cannot be used as a photo"),
    ("cut.png", png(3)[:200], "cannot be used as a photo"),
    ("layers.jpg", psd_file(), "Photoshop document (PSD) is not accepted"),
    ("bomb.png", png_bomb(6300), "16,777,216 pixels (4096 x 4096) for a PNG image (FASHIONREC_MAX_UPLOAD_PIXELS)"),
])
def test_a_bad_upload_gets_a_friendly_message(app: AppTest, name: str, data: bytes, message: str) -> None:
    app.file_uploader(key="upload").upload(name, data, "image/jpeg").run()
    assert not app.exception
    assert message in app.error[0].value and "Traceback" not in app.error[0].value
    assert result_ids(app) == []


def _red_over_blue(picture: Image.Image) -> bool:
    """Upright `image_corpus.upright_picture`: portrait, red in the top half, blue in the bottom half (JPEG aside)."""
    pixels = np.asarray(picture.convert("RGB"), dtype=float)
    height = pixels.shape[0]
    top, bottom = pixels[: height // 2 - 2].reshape(-1, 3), pixels[height // 2 + 2:].reshape(-1, 3)
    return (picture.height > picture.width and np.abs(top - RED).max(axis=1).mean() < 30
            and np.abs(bottom - BLUE).max(axis=1).mean() < 30)


def test_a_photo_with_damaged_exif_is_shown_upright_and_answered(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit

    from fashionrec.index import read

    data = corrupt_exif_jpeg()  # red over blue, stored turned a quarter, EXIF Orientation 6 readable
    with Image.open(io.BytesIO(data)) as stored:  # by hand, without the EXIF: the pixels really lie sideways
        assert stored.size == (40, 30) and not _red_over_blue(stored)
        assert _red_over_blue(stored.convert("RGB").transpose(Image.Transpose.ROTATE_270))  # what Orientation 6 asks
    shown, embedded = [], []
    show, look = streamlit.image, read.in_catalog_look  # the picture the model's input is made of (index.read)
    monkeypatch.setattr(streamlit, "image", lambda image, *a, **kw: (shown.append(image), show(image, *a, **kw))[1])
    monkeypatch.setattr(read, "in_catalog_look", lambda image, size: (embedded.append(look(image, size)),
                                                                      embedded[-1])[1])
    app.file_uploader(key="upload").upload("phone.jpg", data, "image/jpeg").run()
    assert not app.exception and not app.error
    assert len(result_ids(app)) == 5
    previews = [image for image in shown if isinstance(image, Image.Image)]  # the result cards show file paths
    assert len(previews) == 1 and _red_over_blue(previews[0])  # the query as the page shows it: upright
    assert len(embedded) == 1 and _red_over_blue(embedded[0])  # and as the model sees it


def answer_as_a_person(shop_catalog: Path, monkeypatch: pytest.MonkeyPatch,
                       garments: list[tuple[str, tuple[float, float, float, float], str]]) -> list:
    """Make `Recommender.by_image` answer every photo as a photo of a person wearing `garments`: (kind, box as
    shares of the photo's upright width and height, the product whose answers are that garment's results), the
    most probable first. Returns the photos it is called with (a list that grows)."""
    recommender = Recommender(Catalog.open(shop_catalog))
    answers = {product_id: recommender.by_id(product_id, k=5).results for _, _, product_id in garments}
    calls: list = []

    def by_image(self, image, k=5, where=None, show_duplicates=False, colour_weight=None, region=None, regions=True):
        calls.append(image)
        width, height = open_image(image, 10**8).size
        found = tuple(RegionAnswer(kind, (round(box[0] * width), round(box[1] * height), round(box[2] * width),
                                          round(box[3] * height)), 0.4 / (1 + n), answers[product_id])
                      for n, (kind, box, product_id) in enumerate(garments))
        chosen = next((answer for answer in found if answer.kind == region), found[0])
        return Recommendations(model="fake", results=chosen.results, regions=found, region=chosen.kind)

    monkeypatch.setattr(Recommender, "by_image", by_image)
    return calls


@pytest.fixture
def two_garments(shop_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Match], list[Match], list]:
    """Every photo answered as a photo of a person: a top in its upper half (with the answers to product 11) and a
    bottom in its lower half (those of product 3), boxes in the photo's upright pixels. Returns (the top's results,
    the bottom's, the photos `by_image` was called with)."""
    calls = answer_as_a_person(shop_catalog, monkeypatch, [("top", (0, 0, 1, 0.5), "11"), ("bottom", (0, 0.5, 1, 1), "3")])
    recommender = Recommender(Catalog.open(shop_catalog))
    return recommender.by_id("11", k=5).results, recommender.by_id("3", k=5).results, calls


def tap_photo(app: AppTest) -> tuple[str, Image.Image]:
    """The boxed photo's tap component (streamlit-image-coordinates): its widget id, and the picture it shows (the
    data URL it is given)."""
    [component] = app.get("component_instance")
    assert component.proto.component_name == "streamlit_image_coordinates.streamlit_image_coordinates"
    header, data = json.loads(component.proto.json_args)["src"].split(",", 1)
    assert header == "data:image/png;base64"
    return component.proto.id, Image.open(io.BytesIO(base64.b64decode(data)))


def tap(app: AppTest, x: float, y: float, width: float, height: float) -> AppTest:
    """A tap at (x, y) on the boxed photo shown `width` x `height`, as the component's frontend reports it (its
    main.js: the click's offsetX/offsetY and the picture's shown size). AppTest cannot drive a custom component, so
    the run gets the widget states a browser would send: AppTest's own, plus the component's new value (through
    AppTest's private `_tree` and `_run`)."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    component_id, _ = tap_photo(app)
    states = app._tree.get_widget_states()
    value = {"x": x, "y": y, "width": width, "height": height, "unix_time": time.time_ns() // 1000}
    states.widgets.append(WidgetState(id=component_id, json_value=json.dumps(value)))
    return app._run(states)


def test_a_photo_of_a_person_offers_its_garments_and_switching_reuses_the_answer(
        app: AppTest, two_garments: tuple[list[Match], list[Match], list]) -> None:
    """Issue 23: one choice per garment, the most probable first; choosing another shows its results from the same
    answer (the model is not run again); a new photo starts again at its most probable garment."""
    tops, bottoms, calls = two_garments
    app.file_uploader(key="upload").upload("me.png", png(11), "image/png").run()
    assert not app.exception and not app.error
    choice = app.radio(key="garment")
    assert choice.options == ["top", "bottom"] and choice.value == "top"
    assert result_ids(app) == [m.id for m in tops] and app.subheader[1].value == "5 products like the top"
    assert app.caption[0].value == "Your photo (me.png) · found: top, bottom · tap a garment to choose it"
    app.radio(key="garment").set_value("bottom").run()
    assert result_ids(app) == [m.id for m in bottoms] and app.subheader[1].value == "5 products like the bottom"
    assert len(calls) == 1  # the garment's results came from the answer already there
    app.file_uploader(key="upload").upload("you.png", png(12), "image/png").run()
    assert app.radio(key="garment").value == "top" and result_ids(app) == [m.id for m in tops]
    assert len(calls) == 2


def test_the_garments_are_boxed_on_the_upright_photo(app: AppTest,
                                                       two_garments: tuple[list[Match], list[Match], list]) -> None:
    """The boxes are in the pixels of the photo as decoded upright (EXIF applied), so they are drawn on it: a phone
    photo stored sideways shows its top box on its red upper half, its bottom box on its blue lower half."""
    app.file_uploader(key="upload").upload("phone.jpg", corrupt_exif_jpeg(), "image/jpeg").run()
    assert not app.exception and not app.error
    assert len(app.get("image")) == 5  # the results': the boxed photo is the tap component's, not an st.image
    _, boxed = tap_photo(app)
    assert boxed.size == (480, 640)  # portrait, at the preview's width
    pixels = np.asarray(boxed.convert("RGB"), dtype=float)
    assert np.abs(pixels[160, 240] - RED).max() < 40 and np.abs(pixels[480, 240] - BLUE).max() < 40
    top_edge, bottom_edge = pixels[2, 240], pixels[321, 240]  # the chosen top's thick line, the bottom's thin one
    assert np.abs(top_edge - (0xE4, 0x57, 0x2E)).max() < 2 and np.abs(bottom_edge - (0x1F, 0x77, 0xB4)).max() < 2


def test_tapping_a_garment_on_the_photo_chooses_it(app: AppTest, two_garments: tuple[list[Match], list[Match], list]
                                                   ) -> None:
    """Issue 23: a tap on the photo chooses the garment whose box holds it, whatever size the page shows the photo
    at: the tap comes in the shown picture's pixels and is scaled to the photo's own (not to those of the picture
    decoded reduced for the preview). The radio shows the choice, the model is not run again, a tap is not repeated
    by later runs, and a second tap at the same spot counts."""
    tops, bottoms, calls = two_garments
    buffer = io.BytesIO()
    draw_product(11, (1200, 1600)).save(buffer, "JPEG")  # decoded reduced (JPEG draft): the boxes are in its own pixels
    app.file_uploader(key="upload").upload("me.jpg", buffer.getvalue(), "image/jpeg").run()
    _, picture = tap_photo(app)
    width, height = picture.width / 3, picture.height / 3  # shown a third of the size it is drawn at
    tap(app, width / 2, height * 3 / 4, width, height)  # the lower half: the bottom (read unscaled: the top)
    assert not app.exception and app.radio(key="garment").value == "bottom"
    assert result_ids(app) == [m.id for m in bottoms] and app.subheader[1].value == "5 products like the bottom"
    _, picture = tap_photo(app)
    bottom_edge = np.asarray(picture.convert("RGB"), dtype=float)[picture.height // 2 + 2, picture.width // 2]
    assert np.abs(bottom_edge - (0x1F, 0x77, 0xB4)).max() < 2  # the bottom's line, thick now, below the boxes' seam
    assert len(calls) == 1
    app.radio(key="garment").set_value("top").run()  # the radio still chooses; the last tap is not applied again
    assert app.radio(key="garment").value == "top" and result_ids(app) == [m.id for m in tops]
    app.run()
    assert app.radio(key="garment").value == "top"
    tap(app, width / 2, height * 3 / 4, width, height)  # the same spot again
    assert app.radio(key="garment").value == "bottom" and result_ids(app) == [m.id for m in bottoms]
    assert len(calls) == 1


def test_a_tap_chooses_the_smallest_box_that_holds_it_and_outside_every_box_nothing(
        app: AppTest, shop_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Boxes of garments nest (a bag in front of a top): a tap inside both means the smaller; a tap outside every
    box keeps the choice."""
    answer_as_a_person(shop_catalog, monkeypatch, [("top", (0.25, 0, 0.75, 0.5), "11"),
                                                   ("bottom", (0.25, 0.5, 0.75, 1), "3"),
                                                   ("bag", (0.5, 0.25, 0.75, 0.5), "7")])
    app.file_uploader(key="upload").upload("me.png", png(11), "image/png").run()
    assert app.radio(key="garment").options == ["top", "bottom", "bag"]
    for x, y, kind in [(0.6, 0.4, "bag"), (0.3, 0.4, "top"), (0.1, 0.4, "top"), (0.6, 0.9, "bottom"),
                       (0.9, 0.1, "bottom"), (0.7, 0.3, "bag"), (0.3, 0.7, "bottom")]:
        tap(app, x * 200, y * 300, 200, 300)  # a share of the width and height of the picture as shown
        assert not app.exception and app.radio(key="garment").value == kind, (x, y)
        assert result_ids(app) == [m.id for m in Recommender(Catalog.open(shop_catalog)).by_id(
            {"top": "11", "bottom": "3", "bag": "7"}[kind], k=5).results]


def test_an_upload_over_the_limit_is_refused(shop_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASHIONREC_CATALOG", str(shop_catalog))
    monkeypatch.setenv("FASHIONREC_MAX_UPLOAD_MB", "0.001")
    app = AppTest.from_file(str(WEBAPP_SCRIPT), default_timeout=TIMEOUT).run()
    noise = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")  # about 30 kB: over the 1 kB limit
    app.file_uploader(key="upload").upload("big.png", buffer.getvalue(), "image/png").run()
    assert "too large" in app.error[0].value and result_ids(app) == []


def test_picking_a_product_and_more_like_this(app: AppTest, shop_catalog: Path) -> None:
    app.radio(key="mode").set_value("Pick a product").run()
    assert result_ids(app) == []
    app.selectbox(key="product").set_value("6").run()
    first = result_ids(app)
    assert len(first) == 5 and "6" not in first
    assert app.get("image")[0].captions == ["6 · Drawn product 6"]
    app.button(key=f"more-{first[0]}").click().run()
    assert app.selectbox(key="product").value == first[0]
    second = result_ids(app)
    assert len(second) == 5 and first[0] not in second


def test_the_match_colour_slider_sets_the_weight_and_cards_show_swatches(app: AppTest, shop_catalog: Path) -> None:
    recommender = Recommender(Catalog.open(shop_catalog))
    slider = app.sidebar.slider(key="colour-weight")
    assert slider.label == "Match colour" and slider.value == pytest.approx(load_settings().colour_weight)
    assert not slider.disabled
    app.radio(key="mode").set_value("Pick a product").run()
    app.selectbox(key="product").set_value("7").run()
    for weight in (0.0, 1.0):
        app.sidebar.slider(key="colour-weight").set_value(weight).run()
        assert not app.exception
        expected = recommender.by_id("7", k=5, colour_weight=weight).results
        assert result_ids(app) == [m.id for m in expected]
        swatches = [m.value for m in app.markdown if 'data-testid="swatches"' in m.value]
        assert len(swatches) == 5 and all(c["rgb"] in html for m, html in zip(expected, swatches) for c in m.colours)
    # The page's own answers, against a brute-force ranking at the slider's 0 and 1: they differ, so the slider
    # matters.
    arrays = catalog_arrays(recommender.catalog)
    shown = {}
    for weight in (0.0, 1.0):
        app.sidebar.slider(key="colour-weight").set_value(weight).run()
        shown[weight] = result_ids(app)
        want = more_like(arrays, "7", weight, k=5)
        assert shown[weight] == want.ids
        figures = [c.value.split(" · similarity ")[1].split(" · ")[0] for c in app.caption[:5]]
        assert figures == [f"{s:.2%}" for s in want.similarities]
    assert shown[0.0] != shown[1.0]


def test_filters_restrict_the_results(app: AppTest) -> None:
    app.sidebar.multiselect(key="filter-gender").set_value(["Women"]).run()
    app.sidebar.multiselect(key="filter-baseColour").set_value(["Red", "Blue"]).run()
    app.sidebar.slider(key="k").set_value(20).run()
    app.file_uploader(key="upload").upload("p.png", png(1), "image/png").run()
    ids = result_ids(app)
    expected = {str(i) for i in range(1, 41)
                if shop_metadata(i)["gender"] == "Women" and shop_metadata(i)["baseColour"] in ("Red", "Blue")}
    assert set(ids) == expected and len(ids) == 10
    app.sidebar.multiselect(key="filter-articleType").set_value(["Shoes"]).run()
    app.sidebar.multiselect(key="filter-gender").set_value(["Men"]).run()
    app.sidebar.multiselect(key="filter-baseColour").set_value(["White"]).run()
    assert {shop_metadata(int(i))["baseColour"] for i in result_ids(app)} == {"White"}


def test_no_match_says_so(app: AppTest) -> None:
    app.sidebar.multiselect(key="filter-gender").set_value(["Women"]).run()
    app.sidebar.multiselect(key="filter-articleType").set_value(["Shoes"]).run()
    app.sidebar.multiselect(key="filter-baseColour").set_value(["Blue"]).run()  # Women Shoes: ids 6, 12, ..., never Blue
    app.file_uploader(key="upload").upload("p.png", png(1), "image/png").run()
    assert result_ids(app) == [] and app.info[0].value == (
        "No product to show: no product has gender=Women, articleType=Shoes and baseColour=Blue together "
        "(each value exists on its own): remove a filter to see more")


def test_example_photos_appear_when_the_demo_offers_them(shop_catalog: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = Catalog.open(shop_catalog)
    (tmp_path / "17.jpg").write_bytes(catalog.image_path("17").read_bytes())
    monkeypatch.setenv("FASHIONREC_CATALOG", str(shop_catalog))
    monkeypatch.setenv("FASHIONREC_EXAMPLES", str(tmp_path))
    app = AppTest.from_file(str(WEBAPP_SCRIPT), default_timeout=TIMEOUT).run()
    app.radio(key="mode").set_value("Try an example photo").run()
    assert result_ids(app)[0] == "17"


def test_without_a_catalog_the_page_says_how_to_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FASHIONREC_CATALOG", raising=False)
    app = AppTest.from_file(str(WEBAPP_SCRIPT), default_timeout=TIMEOUT).run()
    assert "fashionrec app --catalog" in app.error[0].value and not app.exception
    monkeypatch.setenv("FASHIONREC_CATALOG", str(tmp_path / "nothing-here"))
    app = AppTest.from_file(str(WEBAPP_SCRIPT), default_timeout=TIMEOUT).run()
    assert "cannot be opened" in app.error[0].value and not app.exception


def test_duplicates_are_shown_once_unless_ticked(copies_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASHIONREC_CATALOG", str(copies_catalog))
    app = AppTest.from_file(str(WEBAPP_SCRIPT), default_timeout=TIMEOUT).run()
    app.file_uploader(key="upload").upload("two.jpg", Catalog.open(copies_catalog).image_path("2").read_bytes(),
                                           "image/jpeg").run()
    assert len({"2", "102", "103"} & set(result_ids(app))) == 1
    app.sidebar.checkbox(key="show-duplicates").check().run()
    assert set(result_ids(app)[:3]) == {"2", "102", "103"}
