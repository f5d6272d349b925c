"""Which embedding recipe recommends best? Leave-one-out precision@5 on the whole sample, one backbone.

    python benchmarks/quality.py [--catalog DIR] [--data DIR] [--model efficientnet-lite2] [--write docs/QUALITY.md]

Embeds every sample image once per resize policy (stretch, pad on white, centre crop), plain and mirrored,
keeping the last feature map's max, average and GeM (p=3) pools, so every combination is scored from the
same passes. Then adds PCA-whitening fitted on the catalog. Scores are leave-one-out over all products with
the query's exact-duplicate images left out (`fashionrec.evaluate`). The reference recipe is global max
pooling of the image stretched to the square input, no post-processing. Features are cached in
`--work` (default: the model cache) so a rerun only scores.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from fashionrec.catalog import Catalog, index_images
from fashionrec.catalog.whitening import fit_whitening
from fashionrec.config import WHITEN_DIM, load_settings
from fashionrec.demo import find_sample_data
from fashionrec.evaluate import evaluate
from fashionrec.images import load_model_input
from fashionrec.models import get_spec
from fashionrec.models.weights import file_sha256, locate_weights

RESIZES = ("stretch", "pad", "crop")
POOLINGS = ("max", "avg", "gem")
LABELS = ("articleType", "baseColour")
BATCH = 32
GEM_P = 3.0
DEFAULT_RECIPE = "avg pool, pad"  # what the efficientnet-lite specs do; whitening comes from the catalog


@dataclass(frozen=True)
class Row:
    recipe: str
    dim: int
    article_p5: float
    colour_p5: float
    article_map: float

    def line(self, reference: Row) -> str:
        name = f"**{self.recipe}** (default)" if self.recipe == f"{DEFAULT_RECIPE}, PCA-whitened to {WHITEN_DIM}" \
            else self.recipe
        return (f"| {name} | {self.dim} | {self.article_p5:.4f} | {self.article_p5 - reference.article_p5:+.4f} | "
                f"{self.colour_p5:.4f} | {self.colour_p5 - reference.colour_p5:+.4f} | {self.article_map:.4f} |")


def map_model(model: str, work: Path) -> Path:
    """The backbone's ONNX file returning feature maps (built once)."""
    from fashionrec.models.export import export_onnx

    spec = get_spec(model)
    weights = locate_weights(spec, load_settings(), None)
    target = work / f"{model}-maps-{file_sha256(weights)[:16]}.onnx"
    if not target.is_file():
        export_onnx(spec, weights, target, pooled=False)
    return target


def pools(maps: np.ndarray) -> dict[str, np.ndarray]:
    """Max, average and GeM pools of (N, C, h, w) maps."""
    return {"max": maps.max(axis=(2, 3)), "avg": maps.mean(axis=(2, 3)),
            "gem": np.power(np.power(np.clip(maps, 1e-6, None), GEM_P).mean(axis=(2, 3)), 1 / GEM_P)}


def features(catalog: Catalog, model: str, resize: str, work: Path) -> dict[tuple[str, bool], np.ndarray]:
    """{(pooling, mirrored): (n, C) raw pooled features} for one resize policy, cached as .npy."""
    files = {(p, m): work / f"{model}-{resize}-{p}-{'flip' if m else 'plain'}-{len(catalog)}.npy"
             for p in POOLINGS for m in (False, True)}
    if all(f.is_file() for f in files.values()):
        return {key: np.load(path) for key, path in files.items()}
    spec = get_spec(model)
    prep = replace(spec.preprocessing, resize=resize)
    session = ort.InferenceSession(str(map_model(model, work)), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out: dict[tuple[str, bool], list[np.ndarray]] = {key: [] for key in files}
    paths = [catalog.image_path_at(i) for i in range(len(catalog))]
    max_pixels = load_settings().max_image_pixels
    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        for first in range(0, len(paths), BATCH):
            batch = np.stack(list(pool.map(lambda p: load_model_input(p, prep, max_pixels), paths[first:first + BATCH])))
            for mirrored, images in ((False, batch), (True, np.ascontiguousarray(batch[..., ::-1]))):
                for pooling, vectors in pools(session.run(None, {name: images})[0]).items():
                    out[(pooling, mirrored)].append(vectors.astype(np.float32))
    print(f"  embedded {len(paths)} images ({resize}, plain + mirrored) in {time.perf_counter() - start:.0f} s")
    result = {key: np.concatenate(chunks) for key, chunks in out.items()}
    for key, path in files.items():
        np.save(path, result[key])
    return result


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def pca_whiten(vectors: np.ndarray, dim: int) -> np.ndarray:
    """The catalog whitening fashionrec fits at index time, fitted on these vectors."""
    return fit_whitening([vectors], dim, fitted_on="benchmark").apply(vectors)


def recipe_vectors(raw: dict, recipe: str) -> np.ndarray:
    """Unit vectors of a 'pooling pool, resize[, + mirrored]' recipe from the cached features."""
    pooling, rest = recipe.split(" pool, ")
    resize = rest.split(",")[0]
    vectors = unit(raw[resize][(pooling, False)])
    return unit(vectors + unit(raw[resize][(pooling, True)])) if "mirrored" in recipe else vectors


def score(catalog: Catalog, recipe: str, vectors: np.ndarray) -> Row:
    result = evaluate(catalog, LABELS, k=5, vectors=unit(vectors))
    article, colour = result.deduplicated
    return Row(recipe, vectors.shape[1], article.precision, colour.precision, article.map)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=load_settings().cache_dir / "demo-catalog")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--model", default="efficientnet-lite2")
    parser.add_argument("--work", type=Path, default=load_settings().cache_dir / "quality")
    parser.add_argument("--write", type=Path, help="also write the table into this Markdown file (docs/QUALITY.md)")
    args = parser.parse_args()
    data = find_sample_data(args.data)
    index_images(data / "images", args.catalog, metadata=data / "styles.csv", progress=False)
    catalog = Catalog.open(args.catalog)
    args.work.mkdir(parents=True, exist_ok=True)
    raw = {resize: features(catalog, args.model, resize, args.work) for resize in RESIZES}

    rows = []
    for resize in RESIZES:
        for pooling in POOLINGS:
            plain = raw[resize][(pooling, False)]
            rows.append(score(catalog, f"{pooling} pool, {resize}", plain))
            both = unit(plain) + unit(raw[resize][(pooling, True)])
            rows.append(score(catalog, f"{pooling} pool, {resize}, + mirrored", both))
    reference = rows[0]
    best = max(rows, key=lambda r: r.article_p5).recipe
    for recipe in dict.fromkeys([DEFAULT_RECIPE, best]):
        for dim in (128, 256, 512):
            rows.append(score(catalog, f"{recipe}, PCA-whitened to {dim}", pca_whiten(recipe_vectors(raw, recipe), dim)))
    table = [f"Catalog: {len(catalog)} products of the shared sample; backbone {args.model}; leave-one-out over every "
             "product, the query's exact-duplicate images left out; reference recipe: max pool, stretch.", "",
             "| recipe | dim | articleType P@5 | vs reference | baseColour P@5 | vs reference | articleType mAP@5 |",
             "|---|---:|---:|---:|---:|---:|---:|", *(row.line(reference) for row in rows)]
    print("\n".join(table))
    if args.write:
        write_markdown(args.write, table)


def write_markdown(path: Path, table: list[str]) -> None:
    """Replace the generated block of `path` (between the markers) with `table`, keeping the prose around it."""
    begin, end = "<!-- generated by benchmarks/quality.py: begin -->", "<!-- generated by benchmarks/quality.py: end -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else f"# Quality\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    path.write_text(f"{head}{begin}\n" + "\n".join(table) + f"\n{end}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
