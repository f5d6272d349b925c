"""The web app and the API's docs end to end in a real headless Chromium (Debian's package), driven by Playwright.

`fashionrec app`'s server runs as a child process on a free port; the test uploads a photo the way a
shopper does and checks that k result images really render. A photo of people (two of the sample's photos of
models side by side) shows its garments' boxes, and tapping a garment on the photo (or choosing it below) gives
that garment's results.
`fashionrec serve` runs the same way, and its /docs page must render with every request to another host
refused (as on a machine without internet). Screenshots go to `test-artifacts/`. Without Chromium the tests
are skipped with the reason, except in CI (`CI` set), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fashionrec.config import load_settings
from fashionrec.index.run import index_images
from fashionrec.launch import start_web_app, stop, wait_until_up
from tests.conftest import free_port, write_products

CHROMIUM = Path(os.environ.get("FASHIONREC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SAMPLE_PRODUCTS = 60
# Two of the sample's photos of models (a man in a T-shirt: Tshirts; a woman in jeans: Jeans), indexed with the
# others; the photo of a person is composed from them.
MODEL_PHOTOS = ("2059", "50963")
WAIT_MS = 90_000
ALL_RESULT_IMAGES_LOADED = """(k) => {
    const images = [...document.querySelectorAll('.st-key-results img')];
    return images.length === k && images.every(image => image.complete && image.naturalWidth > 0);
}"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install it (.ci/run does)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install -e '.[test]')")
    if not CHROMIUM.is_file():
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory, lite0) -> tuple[Path, Path, str]:
    """(catalog, a photo to upload, the product it shows): real sample products when the sample is present."""
    from tests.conftest import SAMPLE_DIR

    root = tmp_path_factory.mktemp("browser")
    images = root / "images"
    queries = sorted((SAMPLE_DIR / "queries_fullres").glob("*.jpg")) if SAMPLE_DIR.is_dir() else []
    if queries:
        images.mkdir()
        wanted = [path.stem for path in queries]
        others = sorted(p.stem for p in (SAMPLE_DIR / "images").glob("*.jpg") if p.stem not in wanted)
        chosen = wanted + others[: SAMPLE_PRODUCTS - len(wanted)]
        for product_id in chosen + [pid for pid in MODEL_PHOTOS if pid not in chosen]:
            shutil.copy(SAMPLE_DIR / "images" / f"{product_id}.jpg", images)
        metadata: Path | None = SAMPLE_DIR / "styles.csv"
        photo = queries[0]
    else:
        write_products(images, range(1, SAMPLE_PRODUCTS + 1))
        metadata = None
        photo = images / "7.jpg"
    index_images(images, root / "catalog", metadata=metadata, model="efficientnet-lite0", progress=False)
    return root / "catalog", photo, photo.stem


@pytest.fixture(scope="module")
def app_url(shop: tuple[Path, Path, str]) -> Iterator[str]:
    port = free_port()
    server = start_web_app(shop[0], port=port, quiet=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server, timeout=120)
        yield url
    finally:
        stop(server)


def card_captions(page) -> list[str]:
    """The result cards' captions ("Tshirts · Blue · similarity 97.1% · id 1530"), without the space that the
    similarity tooltip's icon adds."""
    return [text.strip() for text in page.locator(".st-key-results [data-testid='stCaptionContainer']").all_inner_texts()]


SHOWN_IDS = """(ids) => [...document.querySelectorAll('.st-key-results [data-testid="stCaptionContainer"]')]
    .map(caption => caption.innerText.trim().split('id ').pop()).join(',') === ids.join(',')"""


def wait_for_results(page, ids: list[str]) -> None:
    """Wait until the result cards show the products `ids`, in order, with their images loaded (a page keeps its
    earlier cards until the new ones replace them, so a count alone can read the old ones)."""
    page.wait_for_function(SHOWN_IDS, arg=ids, timeout=WAIT_MS)
    page.wait_for_function(ALL_RESULT_IMAGES_LOADED, arg=len(ids), timeout=WAIT_MS)


def upload(page, app_url: str, photo: Path) -> None:
    """Open the app, upload `photo` the way a shopper does, and wait until the 5 result images have loaded."""
    page.goto(app_url)
    page.get_by_text("Upload a photo of a fashion product").first.wait_for(timeout=WAIT_MS)
    page.locator("input[type=file]").set_input_files(str(photo))
    page.wait_for_function(ALL_RESULT_IMAGES_LOADED, arg=5, timeout=WAIT_MS)


def test_upload_a_photo_and_see_k_result_images(browser, app_url: str, shop: tuple[Path, Path, str]) -> None:
    from fashionrec.catalog.catalog import Catalog
    from fashionrec.recommend.recommender import Recommender

    _, photo, product_id = shop
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        upload(page, app_url, photo)
        page.get_by_text(f"Your photo ({photo.name})").wait_for(timeout=WAIT_MS)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "webapp-upload.png"), full_page=True)
        cards = card_captions(page)
        assert len(cards) == 5 and any(text.endswith(f"id {product_id}") for text in cards), cards

        more = page.locator(".st-key-results button", has_text="More like this")
        assert more.count() == 5
        second_id = cards[1].rsplit("id ", 1)[1]
        more.nth(1).click()
        page.locator("[data-testid='stImageCaption']", has_text=second_id).first.wait_for(timeout=WAIT_MS)
        wait_for_results(page, [m.id for m in Recommender(Catalog.open(shop[0])).by_id(second_id, k=5).results])
        after = card_captions(page)
        assert len(after) == 5 and not any(text.endswith(f"id {second_id}") for text in after)
        page.screenshot(path=str(ARTIFACTS / "webapp-more-like-this.png"), full_page=True)
    finally:
        page.close()


SWATCHES = """() => [...document.querySelectorAll('.st-key-results [data-testid="stElementContainer"]')]
    .map(box => [...box.querySelectorAll('span[title^="#"]')].map(span => span.title.split(' ')[0]))
    .filter(colours => colours.length > 0)"""


def test_the_match_colour_slider_reranks_and_each_card_shows_its_colours(browser, app_url: str,
                                                                          shop: tuple[Path, Path, str]) -> None:
    """Issue 15: every card shows the product's dominant colours as swatches; moving "Match colour" to 1 gives
    the library's ranking at full colour."""
    from fashionrec.catalog.catalog import Catalog
    from fashionrec.recommend.recommender import Recommender

    catalog_dir, photo, _ = shop
    recommender = Recommender(Catalog.open(catalog_dir))
    full = [m.id for m in recommender.by_image(photo, k=5, colour_weight=1.0).results]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        upload(page, app_url, photo)
        shown = [m.id for m in recommender.by_image(photo, k=5).results]
        assert [text.rsplit("id ", 1)[1] for text in card_captions(page)] == shown and shown != full
        slider = page.locator(".st-key-colour-weight input[type=range]")
        assert float(slider.input_value()) == load_settings().colour_weight and slider.is_enabled()  # the default
        slider.focus()
        slider.press("End")  # the strongest colour setting
        page.locator(".st-key-colour-weight [data-testid='stSliderThumbValue']", has_text="1.00").wait_for(
            timeout=WAIT_MS)
        wait_for_results(page, full)
        swatches = page.evaluate(SWATCHES)
        catalog = recommender.catalog
        assert swatches == [[c["rgb"] for c in catalog.swatches_at(catalog.position(i))] for i in full], swatches
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "webapp-match-colour.png"), full_page=True)
    finally:
        page.close()


@pytest.fixture(scope="module")
def people_photo(shop: tuple[Path, Path, str], tmp_path_factory) -> Path:
    """A photo of people: the sample's two photos of models (`MODEL_PHOTOS`), each enlarged 4x, side by side on a
    white canvas (600 x 400 pixels, small enough to be searched as it is: the boxes are in its own pixels)."""
    from PIL import Image

    from tests.conftest import SAMPLE_DIR

    if not all((SAMPLE_DIR / "images" / f"{pid}.jpg").is_file() for pid in MODEL_PHOTOS):
        pytest.skip(f"the sample's photos of models {MODEL_PHOTOS} are absent (expected in {SAMPLE_DIR})")
    margin, scale = 40, 4
    models = [Image.open(SAMPLE_DIR / "images" / f"{pid}.jpg").convert("RGB") for pid in MODEL_PHOTOS]
    models = [model.resize((model.width * scale, model.height * scale), Image.Resampling.LANCZOS) for model in models]
    canvas = Image.new("RGB", (sum(m.width for m in models) + 3 * margin, max(m.height for m in models) + 2 * margin),
                       "white")
    left = margin
    for model in models:
        canvas.paste(model, (left, margin))
        left += model.width + margin
    photo = tmp_path_factory.mktemp("people") / "two-models.png"
    canvas.save(photo)
    return photo


CHOSEN_OPTION = ".st-key-garment [data-testid='stRadioOption'][data-selected='true']"
TAP_PHOTO = ".st-key-garments iframe"  # the boxed photo: streamlit-image-coordinates' frame, an <img id="image">


def boxed_photo(page):
    """The photo with the garments' boxes, as the page shows it (the data URL the component's frame shows)."""
    import base64
    import io

    from PIL import Image

    source = page.frame_locator(TAP_PHOTO).locator("#image").get_attribute("src")
    header, data = source.split(",", 1)
    assert header == "data:image/png;base64", header
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def edge_width(image, box: tuple[int, int, int, int], scale: float, colour: str) -> int:
    """How many pixels of `colour` run across the middle of the box's right edge (the line is drawn inside the
    box): the width its line was drawn with, 0 if it is not there."""
    rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    right, middle = round(box[2] * scale), round((box[1] + box[3]) / 2 * scale)
    return sum(image.getpixel((x, middle)) == rgb for x in range(max(0, right - 12), min(image.width, right + 3)))


def inside(box: tuple[int, int, int, int], x: float, y: float) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def a_point_of(wanted, regions) -> tuple[float, float]:
    """A point of the photo (its own pixels) that a tap there means `wanted`: inside its box and outside every other
    box, or else inside only boxes larger than its own (boxes of garments nest); the one nearest its box's centre."""
    def area(box):
        return (box[2] - box[0]) * (box[3] - box[1])

    x0, y0, x1, y1 = wanted.box
    points = [(x0 + (x1 - x0) * i / 20, y0 + (y1 - y0) * j / 20) for i in range(1, 20) for j in range(1, 20)]
    others = [region.box for region in regions if region is not wanted]
    alone = [point for point in points if not any(inside(box, *point) for box in others)]
    smallest = [point for point in points if all(area(box) > area(wanted.box) for box in others if inside(box, *point))]
    candidates = alone or smallest
    assert candidates, (wanted, regions)  # no point where a tap means this garment: the test would test nothing
    return min(candidates, key=lambda p: (p[0] - (x0 + x1) / 2) ** 2 + (p[1] - (y0 + y1) / 2) ** 2)


LISTEN_TO_TAPS = """() => { window.taps = [];
    window.addEventListener('message', event => {
        if (event.data && event.data.type === 'streamlit:setComponentValue') window.taps.push(event.data.value);
    }); }"""


FRAME_FITS_PICTURE = """(wider) => {
    const frame = document.querySelector('.st-key-garments iframe');
    const picture = frame.contentDocument.getElementById('image');
    const shown = picture.getBoundingClientRect();
    return shown.width > wider && Math.abs(frame.getBoundingClientRect().height - shown.height) <= 1;
}"""


def tap_on_photo(page, photo_size: tuple[int, int], point: tuple[float, float]) -> dict[str, float]:
    """Click the boxed photo where it shows the photo's `point` (in the photo's own pixels), whatever size the page
    shows it at; returns where that is in the picture as shown, and the size it is shown at."""
    image = page.frame_locator(TAP_PHOTO).locator("#image")
    shown = image.bounding_box()
    position = {"x": point[0] * shown["width"] / photo_size[0], "y": point[1] * shown["height"] / photo_size[1]}
    image.click(position=position)
    return {**position, "width": shown["width"], "height": shown["height"]}


def test_a_photo_of_people_shows_the_garments_and_the_one_chosen_gives_the_results(
        browser, app_url: str, shop: tuple[Path, Path, str], people_photo: Path) -> None:
    """Issue 23: the garments found are boxed and labelled on the photo, one control each; tapping the second on
    the photo shows the library's answer for that region, selects it in the controls and makes its box the thick
    one; in a wider window (the photo shown larger, its frame still fitting it) tapping the first goes back; the
    controls still choose. The tappable photo needs nothing from another host."""
    from PIL import Image

    from fashionrec.catalog.catalog import Catalog
    from fashionrec.recommend.recommender import Recommender
    from fashionrec.webapp import CHOSEN_LINE, KIND_COLOURS, OTHER_LINE, PREVIEW_PIXELS

    recommender = Recommender(Catalog.open(shop[0]))
    answer = recommender.by_image(people_photo, k=5)
    kinds = [region.kind for region in answer.regions]
    assert len(kinds) >= 2 and answer.region == kinds[0], kinds  # the composite must show garments, or it tests nothing
    second = kinds[1]
    first_ids = [m.id for m in answer.results]
    second_ids = [m.id for m in recommender.by_image(people_photo, k=5, region=second).results]
    assert first_ids != second_ids
    photo_size = Image.open(people_photo).size
    scale = PREVIEW_PIXELS / photo_size[0]  # the boxed photo is drawn at the preview's width
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    elsewhere: list[str] = []
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(app_url)
               else (elsewhere.append(route.request.url), route.abort()))
    try:
        upload(page, app_url, people_photo)
        choices = page.locator(".st-key-garment [data-testid='stRadioOption']")  # one per garment
        assert [text.strip() for text in choices.all_inner_texts()] == kinds
        assert page.locator(CHOSEN_OPTION).inner_text().strip() == kinds[0]
        assert [text.rsplit("id ", 1)[1] for text in card_captions(page)] == first_ids
        shown = boxed_photo(page)
        assert shown.width == PREVIEW_PIXELS
        widths = [edge_width(shown, region.box, scale, KIND_COLOURS[region.kind]) for region in answer.regions]
        assert widths[0] >= CHOSEN_LINE and all(OTHER_LINE <= w < CHOSEN_LINE for w in widths[1:]), widths
        rendered = page.frame_locator(TAP_PHOTO).locator("#image").bounding_box()
        assert rendered["width"] < PREVIEW_PIXELS - 20, rendered  # shown smaller than drawn: the tap is scaled
        assert abs(page.locator(TAP_PHOTO).bounding_box()["height"] - rendered["height"]) <= 1  # the frame fits it
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "webapp-garments.png"), full_page=True)

        page.evaluate(LISTEN_TO_TAPS)  # what the component tells the app (its frame posts it to the page)
        tapped = tap_on_photo(page, photo_size, a_point_of(answer.regions[1], answer.regions))
        wait_for_results(page, second_ids)
        page.get_by_text(f"5 products like the {second}").wait_for(timeout=WAIT_MS)
        assert page.locator(CHOSEN_OPTION).inner_text().strip() == second
        shown = boxed_photo(page)
        widths = [edge_width(shown, region.box, scale, KIND_COLOURS[region.kind]) for region in answer.regions]
        assert widths[1] >= CHOSEN_LINE and widths[0] < CHOSEN_LINE, widths
        page.screenshot(path=str(ARTIFACTS / "webapp-garment-tapped.png"), full_page=True)
        [told] = page.evaluate("() => window.taps")  # the tap in the pixels of the picture as shown, not its own
        assert abs(told["x"] - tapped["x"]) <= 1 and abs(told["y"] - tapped["y"]) <= 1, (told, tapped)
        assert abs(told["width"] - tapped["width"]) <= 1 and abs(told["height"] - tapped["height"]) <= 1, (told, tapped)

        page.set_viewport_size({"width": 1900, "height": 1000})  # a wider window: the photo is shown larger
        page.wait_for_function(FRAME_FITS_PICTURE, arg=PREVIEW_PIXELS + 20, timeout=WAIT_MS)
        tap_on_photo(page, photo_size, a_point_of(answer.regions[0], answer.regions))  # and back, on the photo
        wait_for_results(page, first_ids)
        assert page.locator(CHOSEN_OPTION).inner_text().strip() == kinds[0]
        choices.get_by_text(second, exact=True).click()  # the controls still choose
        wait_for_results(page, second_ids)
        assert page.locator(CHOSEN_OPTION).inner_text().strip() == second
        assert elsewhere == [], elsewhere
    finally:
        page.close()


def test_a_bad_upload_shows_a_message_not_a_traceback(browser, app_url: str, tmp_path: Path) -> None:
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is a text file with a .jpg name")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(app_url)
        page.get_by_text("Upload a photo of a fashion product").first.wait_for(timeout=WAIT_MS)
        page.locator("input[type=file]").set_input_files(str(fake))
        page.get_by_text("This file cannot be used as a photo").wait_for(timeout=WAIT_MS)
        assert "Traceback" not in page.content()
        assert page.locator(".st-key-results img").count() == 0
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "webapp-bad-upload.png"), full_page=True)
    finally:
        page.close()


def test_the_api_docs_render_without_internet(browser, shop: tuple[Path, Path, str]) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "fashionrec.cli", "serve", "--catalog", str(shop[0]),
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    elsewhere: list[str] = []

    def only_this_server(route) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    try:
        wait_until_up(base, server, timeout=120, health_path="/health")
        page.route("**/*", only_this_server)
        page.goto(f"{base}/docs")
        operations = page.locator(".opblock-summary-path")
        operations.first.wait_for(timeout=WAIT_MS)
        paths = {text.replace("\u200b", "") for text in operations.all_inner_texts()}
        assert paths == {"/health", "/filters", "/recommend", "/products/{product_id}", "/products/{product_id}/image",
                         "/products/{product_id}/similar", "/products:batch"}
        assert page.locator(".opblock-summary-path", has_text="/recommend").is_visible()
        assert elsewhere == [], elsewhere
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "api-docs.png"), full_page=True)
    finally:
        page.close()
        stop(server)
