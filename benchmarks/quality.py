"""Which embedding recipe recommends best? Leave-one-out precision@5 and real-photo recall, one backbone.

    python benchmarks/quality.py [--data DIR] [--model efficientnet-lite2] [--work DIR] [--write docs/QUALITY.md]

The backbone is the network exactly as its weights were trained (`fashionrec.models`; its ImageNet logits are
tested against the package's own torch network). One pass per (resize policy, input size) embeds every sample
image and the 17 full-resolution photos, plain and mirrored, and keeps the max, average and GeM (p=3) pools of
three feature maps: the head (what fashionrec ships), the last block, and the last block at stride 16. Every
recipe below is scored from those passes:

- catalog to catalog: leave-one-out articleType and baseColour P@5 over all products, the query's exact-duplicate
  images left out (`fashionrec.quality.evaluate`);
- photo to catalog: the 17 real photos (1080x1440 to 1800x2400) of catalog products, queried against the whole
  catalog: recall@1 and @5 of their own product, and articleType P@5 of the other results (category precision
  for a shopper's photo), with and without query matching (`imaging.look.match_catalog_look`).

Features are cached in `--work` (default: the model cache) as .npz of plain arrays, so a rerun only scores.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images
from fashionrec.catalog.whitening import fit_whitening
from fashionrec.config import COLOUR_SIZE_FROM, COLOUR_SIZE_RISE, COLOUR_SIZE_TO, load_settings
from fashionrec.demo import find_sample_data
from fashionrec.quality.evaluate import evaluate
from fashionrec.imaging.look import match_catalog_look
from fashionrec.imaging.decode import open_image
from fashionrec.imaging.preprocess import preprocess
from fashionrec.models import get_spec
from fashionrec.models.weights import file_sha256, locate_weights

LABELS = ("articleType", "baseColour")
POOLINGS = ("max", "avg", "gem")
TAPS = ("head", "last", "mid")  # head map (shipped), last block's output, last block at stride 16
BATCH = 32
GEM_P = 3.0
INPUT = "images"  # fashionrec.models.export.INPUT_NAME
FEATURES_VERSION = 2  # bump when what a pass stores changes
THREE_MAPS = ("head", "last", "mid")


@dataclass(frozen=True)
class Recipe:
    """One way to turn an image into a vector."""

    resize: str = "pad"
    size: int = 0  # 0: the model's own input size
    pooling: str = "max"
    mirror: bool = False
    taps: tuple[str, ...] = ("head",)
    whiten: int = 0  # PCA-whitening dimension fitted on the catalog (0: none)

    def label(self, native: int) -> str:
        parts = [f"{self.pooling} pool", self.resize]
        if (self.size or native) != native:
            parts.append(f"{self.size} px")
        if self.taps != ("head",):
            parts.append("+".join(self.taps) + " maps")
        if self.mirror:
            parts.append("+ mirrored")
        if self.whiten:
            parts.append(f"PCA-whitened to {self.whiten}")
        return ", ".join(parts)


WHITENING_BASES = (  # whitening is tried on every plausible default of the sections above
    Recipe("stretch", pooling="max"), Recipe("pad", pooling="max"), Recipe("pad", pooling="avg"),
    Recipe("pad", pooling="gem"), Recipe("pad", pooling="max", mirror=True), Recipe("pad", pooling="avg", mirror=True),
    Recipe("pad", pooling="max", taps=THREE_MAPS), Recipe("pad", pooling="avg", taps=THREE_MAPS),
    Recipe("pad", pooling="gem", taps=THREE_MAPS), Recipe("pad", pooling="avg", mirror=True, taps=THREE_MAPS),
)


@dataclass(frozen=True)
class Row:
    recipe: Recipe
    dim: int
    article_p5: float
    colour_p5: float
    photo_r1: float
    photo_r5: float
    photo_article_p5: float
    photo_r5_unmatched: float


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def taps_model(model: str, size: int, work: Path) -> Path:
    """The backbone's ONNX graph (exported by fashionrec, at `size` px) returning its three tapped feature maps."""
    from fashionrec.models.export import export_onnx

    spec = get_spec(model)
    spec = get_spec(model, taps=TAPS, preprocessing=replace(spec.preprocessing, size=size))
    weights = locate_weights(spec, load_settings(), None)
    target = work / f"{model}-taps-{size}-{file_sha256(weights)[:16]}.onnx"
    if not target.is_file():
        export_onnx(spec, weights, target, output="maps")
    return target


def pools(maps: np.ndarray) -> dict[str, np.ndarray]:
    """Max, average and GeM pools of (N, C, h, w) maps."""
    return {"max": maps.max(axis=(2, 3)), "avg": maps.mean(axis=(2, 3)),
            "gem": np.power(np.power(np.clip(maps, 1e-6, None), GEM_P).mean(axis=(2, 3)), 1 / GEM_P)}


def photo_images(photos: list[Path], catalog_size: tuple[int, int] | None, max_pixels: int, draft: int) -> list:
    """The real photos decoded as a query is (optionally brought to the catalog's look)."""
    images = [open_image(p, max_pixels, draft_size=draft) for p in photos]
    return [match_catalog_look(i, catalog_size) for i in images] if catalog_size else images


def run_pass(session: ort.InferenceSession, images: list, prep) -> dict[str, np.ndarray]:
    """{'tap/pool/plain|flip': (n, C)} for images given as paths or PIL images."""
    out: dict[str, list[np.ndarray]] = {}
    max_pixels = load_settings().max_image_pixels

    def load(item):
        image = item if not isinstance(item, Path) else open_image(item, max_pixels, draft_size=prep.draft_size)
        return preprocess(image, prep)

    with ThreadPoolExecutor(2) as pool:
        for first in range(0, len(images), BATCH):
            batch = np.stack(list(pool.map(load, images[first:first + BATCH])))
            for flip, inputs in (("plain", batch), ("flip", np.ascontiguousarray(batch[..., ::-1]))):
                for tap, maps in zip(TAPS, session.run(None, {INPUT: inputs})):
                    for pooling, vectors in pools(maps).items():
                        out.setdefault(f"{tap}/{pooling}/{flip}", []).append(vectors.astype(np.float32))
    return {key: np.concatenate(chunks) for key, chunks in out.items()}


def features(catalog: Catalog, photos: list[Path], model: str, resize: str, size: int,
             work: Path) -> dict[str, dict[str, np.ndarray]]:
    """{'catalog' | 'photos' | 'photos_matched': {'tap/pool/flip': features}} for one pass, cached."""
    cache = work / f"{model}-v{FEATURES_VERSION}-{resize}-{size}-{len(catalog)}-{len(photos)}.npz"
    parts = ("catalog", "photos", "photos_matched")
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            return {part: {k.split(":", 1)[1]: stored[k] for k in stored.files if k.startswith(part + ":")}
                    for part in parts}
    spec = get_spec(model)
    prep = replace(spec.preprocessing, resize=resize, size=size)
    session = ort.InferenceSession(str(taps_model(model, size, work)), providers=["CPUExecutionProvider"])
    max_pixels, draft = load_settings().max_image_pixels, 2 * size
    started = time.perf_counter()
    result = {
        "catalog": run_pass(session, [catalog.image_path_at(i) for i in range(len(catalog))], prep),
        "photos": run_pass(session, photo_images(photos, None, max_pixels, draft), prep),
        "photos_matched": run_pass(session, photo_images(photos, catalog.typical_image_size, max_pixels, draft), prep),
    }
    print(f"  pass {resize} {size} px: {len(catalog)} images + {len(photos)} photos, plain and mirrored, "
          f"in {time.perf_counter() - started:.0f} s", flush=True)
    np.savez(cache, **{f"{part}:{key}": array for part, arrays in result.items() for key, array in arrays.items()})
    return result


def vectors_of(raw: dict[str, np.ndarray], recipe: Recipe) -> np.ndarray:
    """Unit vectors of a recipe (before whitening) from one part of a pass."""
    def one(flip: str) -> np.ndarray:
        return unit(np.concatenate([unit(raw[f"{tap}/{recipe.pooling}/{flip}"]) for tap in recipe.taps], axis=1))

    return unit(one("plain") + one("flip")) if recipe.mirror else one("plain")


class Study:
    """Scores recipes on the sample catalog and its real photos."""

    def __init__(self, catalog: Catalog, photos: list[Path], model: str, work: Path) -> None:
        self.catalog, self.photos, self.model, self.work = catalog, photos, model, work
        self.native = get_spec(model).input_size
        self.passes: dict[tuple[str, int], dict] = {}
        self.articles = np.array(catalog.column_values("articleType"), dtype=object)

    def raw(self, recipe: Recipe) -> dict:
        key = (recipe.resize, recipe.size or self.native)
        if key not in self.passes:
            self.passes[key] = features(self.catalog, self.photos, self.model, *key, self.work)
        return self.passes[key]

    def score(self, recipe: Recipe) -> Row:
        raw = self.raw(recipe)
        catalog = vectors_of(raw["catalog"], recipe)
        matched, unmatched = vectors_of(raw["photos_matched"], recipe), vectors_of(raw["photos"], recipe)
        if recipe.whiten:
            whitening = fit_whitening([catalog], recipe.whiten, fitted_on="benchmark")
            catalog, matched, unmatched = (whitening.apply(v) for v in (catalog, matched, unmatched))
        result = evaluate(self.catalog, LABELS, k=5, vectors=catalog)
        article, colour = result.deduplicated
        ranks, precision = self.photo_ranks(catalog, matched)
        unmatched_ranks, _ = self.photo_ranks(catalog, unmatched)
        return Row(recipe, catalog.shape[1], article.precision, colour.precision, float(np.mean(ranks == 1)),
                   float(np.mean(ranks <= 5)), precision, float(np.mean(unmatched_ranks <= 5)))

    def photo_ranks(self, catalog: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, float]:
        """Rank of each photo's own product, and the articleType P@5 of its top 5 other products."""
        ranks, hits = [], []
        for photo, query in zip(self.photos, queries):
            order = np.argsort(-(catalog @ query), kind="stable")
            own = self.catalog.position(photo.stem)
            ranks.append(int(np.flatnonzero(order == own)[0]) + 1)
            others = [p for p in order[:6].tolist() if p != own][:5]
            hits.append(np.mean(self.articles[others] == self.articles[own]))
        return np.array(ranks), float(np.mean(hits))


def table(rows: list[Row], native: int, default: Recipe, reference: Row) -> list[str]:
    lines = ["| recipe | dim | articleType P@5 | vs reference | baseColour P@5 | vs reference | "
             "photos R@1 | photos R@5 | photos articleType P@5 | photos R@5 unmatched |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        name = row.recipe.label(native)
        name = f"**{name}** (default)" if row.recipe == default else name
        lines.append(f"| {name} | {row.dim} | {row.article_p5:.4f} | {row.article_p5 - reference.article_p5:+.4f} | "
                     f"{row.colour_p5:.4f} | {row.colour_p5 - reference.colour_p5:+.4f} | {row.photo_r1:.2f} | "
                     f"{row.photo_r5:.2f} | {row.photo_article_p5:.3f} | {row.photo_r5_unmatched:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=load_settings().cache_dir / "quality-catalog")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--model", default="efficientnet-lite2")
    parser.add_argument("--work", type=Path, default=load_settings().cache_dir / "quality")
    parser.add_argument("--write", type=Path, help="also write the tables into this Markdown file (docs/QUALITY.md)")
    parser.add_argument("--also-models", default="efficientnet-lite0,efficientnet-lite1",
                        help="other backbones whose own recipe is scored too, in a last section (comma-separated)")
    parser.add_argument("--default-only", action="store_true",
                        help="score only the model's own recipe, plain and mirrored (e.g. to compare backbones)")
    parser.add_argument("--colour-only", action="store_true",
                        help="only the colour weight's trade-off curve (on the catalog as indexed; a few minutes)")
    args = parser.parse_args()
    data = find_sample_data(args.data)
    index_images(data / "images", args.catalog, metadata=data / "styles.csv", model=args.model, progress=False)
    catalog = Catalog.open(args.catalog)
    photos = sorted((data / "queries_fullres").glob("*.jpg"))
    plot = args.write.parent / "colour_curve.png" if args.write else None
    colour_lines = colour_curve(catalog, photos, plot)
    print("\n".join(colour_lines), flush=True)
    if args.write:
        write_markdown(args.write, colour_lines, section=" (colour)")
    if args.colour_only:
        return
    args.work.mkdir(parents=True, exist_ok=True)
    study = Study(catalog, photos, args.model, args.work)
    spec = get_spec(args.model)
    default = Recipe(spec.preprocessing.resize, 0, spec.pooling, spec.mirror, spec.taps, load_settings().whiten_dim)
    native = study.native

    sections: list[tuple[str, list[Recipe]]] = [
        ("Pooling, resizing and mirroring (no whitening)",
         [Recipe(resize, 0, pooling, mirror) for resize in ("stretch", "pad", "crop") for pooling in POOLINGS
          for mirror in (False, True)]),
        ("Input size (pad)", [Recipe("pad", size, pooling) for size in (224, native, 300) for pooling in ("max", "avg")]),
        ("Features of more than one layer (pad)",
         [Recipe("pad", 0, pooling, taps=taps) for pooling in ("max", "avg")
          for taps in (("head",), ("head", "last"), ("head", "last", "mid"))]),
        ("PCA-whitening fitted on the catalog",
         [replace(base, whiten=dim) for base in WHITENING_BASES for dim in (0, 128, 256, 512, 1024)]),
    ]
    if args.default_only:
        sections = [("The model's own recipe", [default, replace(default, mirror=True),
                                                replace(default, whiten=0)])]
    rows_by_section = []
    reference = study.score(Recipe("stretch", 0, "max"))
    for title, recipes in sections:
        rows = [study.score(recipe) for recipe in recipes]
        rows_by_section.append((title, rows))
        print(f"\n### {title}\n", flush=True)
        print("\n".join(table(rows, native, default, reference)), flush=True)
    for other in [m for m in args.also_models.split(",") if m and m != args.model]:
        other_spec = get_spec(other)
        other_study = Study(catalog, photos, other, args.work)  # same products, the other backbone's features
        own = Recipe(other_spec.preprocessing.resize, 0, other_spec.pooling, other_spec.mirror, other_spec.taps,
                     load_settings().whiten_dim)
        rows = [other_study.score(own), other_study.score(replace(own, mirror=True))]
        title = f"{other} ({other_study.native} px), its own recipe"
        rows_by_section.append((title, rows))
        print(f"\n### {title}\n", flush=True)
        print("\n".join(table(rows, other_study.native, own, reference)), flush=True)
    default_row = study.score(default)
    lines = [f"Catalog: {len(catalog)} products of the shared sample; backbone {args.model} ({native} px); "
             f"leave-one-out over every product, the query's exact-duplicate images left out; "
             f"{len(photos)} real photos. Reference recipe: max pool, stretch, nothing else "
             f"(articleType {reference.article_p5:.4f}, baseColour {reference.colour_p5:.4f}). "
             f"Default: {default.label(native)} (articleType {default_row.article_p5:.4f}, "
             f"baseColour {default_row.colour_p5:.4f}, photos R@5 {default_row.photo_r5:.2f})."]
    for title, rows in rows_by_section:
        lines += ["", f"### {title}", "", *table(rows, native, default, reference)]
    if args.write:
        write_markdown(args.write, lines)


COLOUR_GRID = (0.0, 0.02, 0.04, 0.06, 0.08, 0.09, 0.1, 0.11, 0.12, 0.13, 0.14, 0.16, 0.2, 0.3, 0.5, 0.75, 1.0)
HELD_OUT_SEED = 15


def colour_curve(catalog: Catalog, photos: list[Path], plot: Path | None) -> list[str]:
    """articleType and baseColour P@5 over the colour weight (0-1, `--colour-weight`), the default chosen on
    held-out products, and the real photos' recall at the default and at full colour: Markdown lines.

    The products are split in two seeded halves: the default is chosen on half A alone (the largest baseColour
    gain at an articleType drop of at most 0.01 from shape alone), and half B and the whole sample show what it
    gives on products it was not chosen on.
    """
    from fashionrec.recommend.recommender import Recommender
    from fashionrec.recommend.query import colour_gain, size_factor
    from fashionrec.quality.evaluate import photo_recall

    settings = load_settings()
    order = np.random.default_rng(HELD_OUT_SEED).permutation(len(catalog))
    halves = {"A": order[: len(order) // 2], "B": order[len(order) // 2:], "all": None}

    def p5(weight: float, rows) -> tuple[float, float]:
        scores = evaluate(catalog, LABELS, k=5, colour_weight=weight, rows=rows).deduplicated
        return scores[0].precision, scores[1].precision

    curve = {name: [p5(w, rows) for w in COLOUR_GRID] for name, rows in halves.items()}
    base = curve["A"][0]
    allowed = [i for i, (art, _) in enumerate(curve["A"]) if base[0] - art <= 0.01]
    chosen = COLOUR_GRID[max(allowed, key=lambda i: curve["A"][i][1])]
    full = colour_gain(1.0, settings, products=len(catalog))[1]
    lines = [f"The colour weight W (`--colour-weight`, API `colour_weight`, the web app's \"Match colour\") runs from 0 "
             f"(shape only) to 1, the strongest setting offered: the query's colour layout gets the gain "
             f"{full.layout:g} x min(W / 0.5, 1) x the catalog's size factor ({size_factor(len(catalog)):.3g} here; "
             f"1 up to {COLOUR_SIZE_FROM:,} products, {COLOUR_SIZE_RISE:.3g} from {COLOUR_SIZE_TO:,}), at most "
             f"{full.layout:g}, and its whole product colour {full.whole:g} x max(W - 0.5, 0) / 0.5, "
             f"and colour re-ranks the products nearest in shape (`recommend.query`). Leave-one-out P@5, the "
             f"query's exact copies left out; half A and half B are a seeded split of the products (seed "
             f"{HELD_OUT_SEED}).",
             "", f"Largest baseColour gain on half A at an articleType drop of at most 0.01: W = {chosen:g}. The "
                 f"shipped default, {settings.colour_weight:g}, is chosen on many catalogs instead (a 400-product "
                 f"shop must keep the bound too: `benchmarks/catalogs.py`, below).", "",
             "| W | articleType A | baseColour A | articleType B | baseColour B | articleType all | baseColour all |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for i, weight in enumerate(COLOUR_GRID):
        cells = [f"{curve[name][i][0]:.4f} | {curve[name][i][1]:.4f}" for name in ("A", "B", "all")]
        mark = " (default)" if weight == settings.colour_weight else ""
        lines.append(f"| {weight:g}{mark} | " + " | ".join(cells) + " |")
    if photos:
        lines += ["", "| real photos | W | recall@1 | recall@5 |", "|---|---:|---:|---:|"]
        recommender = Recommender(catalog, search="exact")
        for weight in (0.0, settings.colour_weight, 1.0):
            recall = photo_recall(recommender, photos[0].parent, colour_weight=weight)
            lines.append(f"| {recall.photos} photos | {weight:g} | {recall.recall_at_1:.2f} | {recall.recall_at_5:.2f} |")
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(6, 4.5))
        for name, style in (("all", "o-"), ("B", "s--")):
            axis.plot([c[0] for c in curve[name]], [c[1] for c in curve[name]], style, label=f"products: {name}")
        for weight, (art, colour) in zip(COLOUR_GRID, curve["all"]):
            if weight in (0.0, settings.colour_weight, 0.2, 0.5, 1.0):
                axis.annotate(f"W={weight:g}", (art, colour), textcoords="offset points", xytext=(5, 5), fontsize=8)
        axis.set_xlabel("articleType P@5 (shape)")
        axis.set_ylabel("baseColour P@5 (colour)")
        axis.set_title("Colour weight: the trade-off (leave-one-out, shared sample)")
        axis.grid(alpha=0.3)
        axis.legend()
        figure.tight_layout()
        figure.savefig(plot, dpi=110)
        lines += ["", f"![articleType against baseColour P@5 over the colour weight]({plot.name})"]
    return lines


def write_markdown(path: Path, lines: list[str], section: str = "") -> None:
    """Replace the generated block of `path` (between the markers) with `lines`, keeping the prose around it."""
    begin = f"<!-- generated by benchmarks/quality.py{section}: begin -->"
    end = f"<!-- generated by benchmarks/quality.py{section}: end -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else f"# Quality\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    path.write_text(f"{head}{begin}\n" + "\n".join(lines) + f"\n{end}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
