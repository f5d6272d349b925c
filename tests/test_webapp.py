"""webapp.py: the page's logic through Streamlit's AppTest (the real browser test is tests/test_webapp_browser.py)."""

from __future__ import annotations

import io
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


@pytest.fixture
def two_garments(shop_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Match], list[Match], list]:
    """`Recommender.by_image` made to answer every photo as a photo of a person: a top in its upper half (with the
    answers to product 11) and a bottom in its lower half (those of product 3), boxes in the photo's upright pixels.
    Returns (the top's results, the bottom's, the photos it was called with)."""
    recommender = Recommender(Catalog.open(shop_catalog))
    tops, bottoms = recommender.by_id("11", k=5).results, recommender.by_id("3", k=5).results
    calls: list = []

    def by_image(self, image, k=5, where=None, show_duplicates=False, colour_weight=None, region=None, regions=True):
        calls.append(image)
        width, height = open_image(image, 10**8).size
        found = (RegionAnswer("top", (0, 0, width, height // 2), 0.4, tops),
                 RegionAnswer("bottom", (0, height // 2, width, height), 0.2, bottoms))
        chosen = next((answer for answer in found if answer.kind == region), found[0])
        return Recommendations(model="fake", results=chosen.results, regions=found, region=chosen.kind)

    monkeypatch.setattr(Recommender, "by_image", by_image)
    return tops, bottoms, calls


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
    assert app.get("image")[0].captions == ["Your photo (me.png) · found: top, bottom"]
    app.radio(key="garment").set_value("bottom").run()
    assert result_ids(app) == [m.id for m in bottoms] and app.subheader[1].value == "5 products like the bottom"
    assert len(calls) == 1  # the garment's results came from the answer already there
    app.file_uploader(key="upload").upload("you.png", png(12), "image/png").run()
    assert app.radio(key="garment").value == "top" and result_ids(app) == [m.id for m in tops]
    assert len(calls) == 2


def test_the_garments_are_boxed_on_the_upright_photo(app: AppTest, two_garments: tuple[list[Match], list[Match], list],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The boxes are in the pixels of the photo as decoded upright (EXIF applied), so they are drawn on it: a phone
    photo stored sideways shows its top box on its red upper half, its bottom box on its blue lower half."""
    from streamlit.elements.image import ImageMixin

    shown = []
    show = ImageMixin.image
    monkeypatch.setattr(ImageMixin, "image", lambda self, image, *a, **kw: (shown.append(image),
                                                                            show(self, image, *a, **kw))[1])
    app.file_uploader(key="upload").upload("phone.jpg", corrupt_exif_jpeg(), "image/jpeg").run()
    assert not app.exception and not app.error
    boxed = [image for image in shown if isinstance(image, Image.Image)]
    assert len(boxed) == 1 and boxed[0].size == (480, 640)  # portrait, at the preview's width
    pixels = np.asarray(boxed[0], dtype=float)
    assert np.abs(pixels[160, 240] - RED).max() < 40 and np.abs(pixels[480, 240] - BLUE).max() < 40
    top_edge, bottom_edge = pixels[2, 240], pixels[321, 240]  # the chosen top's thick line, the bottom's thin one
    assert np.abs(top_edge - (0xE4, 0x57, 0x2E)).max() < 2 and np.abs(bottom_edge - (0x1F, 0x77, 0xB4)).max() < 2


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
