"""Speed of fashionrec on this machine, against the reference project's code; writes docs/PERFORMANCE.md.

    python benchmarks/speed.py [--data DIR] [--catalog DIR] [--images 400] [--reference-images 60]
                               [--scale 100000,1000000] [--write docs/PERFORMANCE.md]

Sections (every figure in the written file comes from the run that wrote it):
1. ceiling: each backbone's ONNX model alone on ready tensors, steady state, at batch 8, 16 and 32;
2. indexing end to end from the sample's JPEG files into a fresh catalog, at the best batch, and its ratio
   to the ceiling;
3. the reference project's loop as written (Keras ResNet50 + GlobalMaxPooling2D on the torch backend,
   `model.predict` on one image at a time, features in a list, written to one file at the end: the reference pickles it, this writes the
   same floats with `np.save`, a few milliseconds either way), on the same images;
5. query latency of `Recommender.by_image` on the whole sample (real full-resolution photos), split into
   decode + query matching, embedding, search; and process start to first answer of `fashionrec serve`;
6. search at scale: exact numpy against FAISS HNSW and IVF-PQ on real catalog vectors tiled with noise;
7. the whole-catalog similar-items table (`similar-all`) for the sample, projected to 44k and 1M products;
8. peak memory (RSS) of indexing 200 and 800 images: it should not grow with the number of images.
ResNet50 runs on random weights in Keras' layout (its speed does not depend on the values).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_speed import ceiling, random_resnet50_h5  # noqa: E402

from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images  # noqa: E402
from fashionrec.config import load_settings  # noqa: E402
from fashionrec.demo import find_sample_data  # noqa: E402
from fashionrec.models.embed import load_model  # noqa: E402
from fashionrec.imaging.decode import read_image_bytes  # noqa: E402
from fashionrec.recommend.recommender import Recommender
from fashionrec.recommend.similar_all import similar_all  # noqa: E402
from fashionrec.search.hnsw import AnnIndex
from fashionrec.search.exact import exact_search  # noqa: E402

BATCHES = (8, 16, 32)
ROUNDS = 5
MODELS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "efficientnet-lite2-mirrored", "resnet50")
KEPT_MARKER = "<!-- sections of other benchmarks: kept by speed.py --write -->"


def index_rate(images: Path, model: str, weights: Path | None, batch_size: int, work: Path) -> float:
    """Images/s of `index_images`' pipeline (decode, preprocess, inference, store) from JPEG files into a fresh
    catalog; the one-time start (ONNX session, folder scan) is left out, as it does not grow with the images."""
    catalog = work / f"catalog-{model}-{batch_size}"
    shutil.rmtree(catalog, ignore_errors=True)
    report = index_images(images, catalog, model=model, weights=weights, batch_size=batch_size, progress=False)
    return report.pipeline_images_per_second


def reference_loop(paths: list[Path], out: Path) -> float:
    """Images/s of the reference project's code as written, on `paths`."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    base = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(224, 224, 3))
    model = keras.Model(base.input, keras.layers.GlobalMaxPooling2D()(base.output))
    model.predict(np.zeros((1, 224, 224, 3), np.float32), verbose=0)  # warm-up, as any long run amortises it
    start = time.perf_counter()
    features = []
    for path in paths:
        image = keras.utils.load_img(path, target_size=(224, 224))
        array = keras.applications.resnet50.preprocess_input(np.expand_dims(keras.utils.img_to_array(image), 0))
        features.append(model.predict(array, verbose=0).flatten())
    np.save(out, np.stack(features))  # the reference pickles the list; the same floats, no pickle anywhere here
    return len(paths) / (time.perf_counter() - start)


def precision_at_5(catalog: Catalog, model_vectors: np.ndarray) -> float:
    """Leave-one-out articleType P@5 (copies left out) of model vectors, whitened as the catalog is."""
    from fashionrec.catalog.whitening import fit_whitening
    from fashionrec.quality.evaluate import evaluate

    vectors = model_vectors
    if catalog.whitening is not None:
        vectors = fit_whitening([model_vectors], catalog.whitening.dim, "bench").apply(model_vectors)
    return evaluate(catalog, ["articleType"], k=5, vectors=vectors).deduplicated[0].precision


def query_latency(catalog_dir: Path, photos: list[Path], rounds: int = 3) -> dict[str, list[float]]:
    """Per-query seconds of by_image's stages on real photos: decode + matching, embed, search, total."""
    recommender = Recommender(Catalog.open(catalog_dir))
    catalog, embedder = recommender.catalog, recommender.embedder
    data = [read_image_bytes(photo) for photo in photos]
    recommender.by_image(data[0])
    times: dict[str, list[float]] = {"decode + matching": [], "embed": [], "search": [], "by_image total": []}
    for _ in range(rounds):
        for photo in data:
            t0 = time.perf_counter()
            image = recommender.query_image(photo)
            t1 = time.perf_counter()
            query = catalog.project(embedder.embed_image(image))
            t2 = time.perf_counter()
            exact_search(catalog.vectors, query, 5)
            t3 = time.perf_counter()
            recommender.by_image(photo)
            t4 = time.perf_counter()
            for name, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[name].append(value)
    return times


def start_to_first_answer(catalog_dir: Path, photo: Path) -> float:
    """Seconds from starting `fashionrec serve` to the first /recommend answer."""
    import socket
    import urllib.request

    from fashionrec.launch import stop

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "fashionrec.cli", "serve", "--catalog", str(catalog_dir),
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    boundary = "speedbench"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    try:
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/recommend", data=body, method="POST",
                                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    json.load(response)
                return time.perf_counter() - start
            except OSError:
                if server.poll() is not None or time.perf_counter() - start > 120:
                    raise RuntimeError("fashionrec serve did not answer") from None
                time.sleep(0.05)
    finally:
        stop(server)


def scale_rows(base: np.ndarray, sizes: list[int], queries: int = 200) -> list[str]:
    """Exact numpy vs FAISS HNSW and IVF-PQ on `base` tiled with noise to each size."""
    import faiss

    rows = []
    rng = np.random.default_rng(0)
    for size in sizes:
        reps = int(np.ceil(size / len(base)))
        vectors = np.concatenate([base] * reps)[:size]
        vectors = vectors + rng.normal(0, 0.02, vectors.shape).astype(np.float32)  # no two rows equal
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        probe = vectors[rng.choice(size, queries, replace=False)] + rng.normal(0, 0.02, (queries, base.shape[1]))
        probe = (probe / np.linalg.norm(probe, axis=1, keepdims=True)).astype(np.float32)
        truth, exact_ms = [], []
        for q in probe:
            t = time.perf_counter()
            truth.append(exact_search(vectors, q, 10).positions)
            exact_ms.append((time.perf_counter() - t) * 1000)
        rows.append(f"| {size:,} | exact (numpy) | 0 | {vectors.nbytes / 1e6:,.0f} | {statistics.median(exact_ms):.2f} | 1.000 |")
        dim = base.shape[1]
        nlist = int(4 * np.sqrt(size))
        t = time.perf_counter()
        hnsw = AnnIndex.build(vectors)  # fashionrec's own index, with its defaults (M=32, efConstruction=80)
        built = time.perf_counter() - t
        for ef in (128, 256, 512):
            hnsw._index.hnsw.efSearch = ef
            rows.append(_row(size, f"fashionrec HNSW (M=32, efSearch={ef})", built, _index_bytes(faiss, hnsw._index),
                             lambda q: hnsw.search(q, 10).positions, probe, truth))
        del hnsw
        t = time.perf_counter()
        ivf = _ivfpq(faiss, dim, nlist)
        ivf.train(vectors[rng.choice(size, min(size, 50 * nlist), replace=False)])
        refined = faiss.IndexRefineFlat(ivf)  # keeps the full vectors too, to re-rank IVF-PQ's candidates
        refined.k_factor = 10
        refined.add(vectors)
        built = time.perf_counter() - t
        for name, index, memory in ((f"FAISS IVF-PQ (nlist={nlist}, m={dim // 8}, nprobe=32)", ivf, _index_bytes(faiss, ivf)),
                                    ("  + exact re-rank of the top 100", refined,
                                     _index_bytes(faiss, ivf) + vectors.nbytes)):
            rows.append(_row(size, name, built, memory, lambda q: index.search(q[None, :], 10)[1][0], probe, truth))
        del refined, ivf
        print("\n".join(rows[-6:]), flush=True)
    return rows


def _row(size: int, name: str, built: float, memory: int, search, probe: np.ndarray, truth: list) -> str:
    """One table row: p50 latency and recall@10 of `search` over the probe queries."""
    times, hits = [], 0
    for q, want in zip(probe, truth):
        t = time.perf_counter()
        found = search(q)
        times.append((time.perf_counter() - t) * 1000)
        hits += len(set(np.asarray(found).tolist()) & set(want.tolist()))
    return (f"| {size:,} | {name} | {built:.0f} | {memory / 1e6:,.0f} | {statistics.median(times):.2f} | "
            f"{hits / (10 * len(probe)):.3f} |")


def _ivfpq(faiss, dim: int, nlist: int):
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, dim // 8, 8, faiss.METRIC_INNER_PRODUCT)
    index.nprobe = 32
    return index


def _index_bytes(faiss, index) -> int:
    return len(faiss.serialize_index(index))


def peak_rss_of_indexing(images: Path, count: int, work: Path) -> float:
    """Peak RSS (MB) of a fresh process indexing the first `count` images.

    The child samples its own resident size every 5 ms: `ru_maxrss` would also count the parent's memory
    at the fork (Linux keeps the high-water mark across exec).
    """
    code = f"""
import os, threading, time
from fashionrec.index import index_images
peak, page, done = [0], os.sysconf("SC_PAGE_SIZE"), threading.Event()
def sample():
    while not done.is_set():
        with open("/proc/self/statm") as statm:
            peak[0] = max(peak[0], int(statm.read().split()[1]) * page)
        time.sleep(0.005)
threading.Thread(target=sample, daemon=True).start()
index_images({str(images)!r}, {str(work / f"mem-{count}")!r}, limit={count}, progress=False)
done.set()
print(peak[0])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1]) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--catalog", type=Path, default=load_settings().cache_dir / "demo-catalog",
                        help="the whole sample indexed with the defaults (built if missing)")
    parser.add_argument("--images", type=int, default=800)
    parser.add_argument("--reference-images", type=int, default=60)
    parser.add_argument("--scale", default="100000,1000000")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    data = find_sample_data(args.data)
    work = Path(tempfile.mkdtemp(prefix="fashionrec-speed-"))
    lines: list[str] = [f"Machine: {os.cpu_count()} cores; the shared sample (fashion-product-images).", ""]
    try:
        subset = work / "images"
        subset.mkdir()
        paths = sorted((data / "images").glob("*.jpg"))[: args.images]
        for path in paths:
            shutil.copy(path, subset)
        weights = {model: None for model in MODELS}
        weights["resnet50"] = random_resnet50_h5(work / "resnet50-random.h5")

        lines += ["## 1-2. Model ceiling and indexing end to end", "",
                  f"{len(paths)} sample JPEGs indexed into a fresh catalog (the pipeline: decode, preprocess, "
                  "inference, store; the one-time start, ONNX session and folder scan, is left out); ceiling = the ONNX "
                  "model alone on ready tensors, steady state. This machine's speed drifts by up to 20% from minute to minute, so "
                  f"after choosing the best batch, ceiling and indexing are measured {ROUNDS} times alternately and "
                  "the medians compared.", "",
                  "| model | ceiling img/s at batch 8 / 16 / 32 | best batch | ceiling (median) | "
                  "indexing end to end (median) | ratio | ratios of the rounds |",
                  "|---|---|---:|---:|---:|---:|---|"]
        rates = {}
        for model in MODELS:
            embedder = load_model(model, weights[model])
            ceilings = {b: ceiling(embedder, b, seconds=4.0) for b in BATCHES}
            best = max(ceilings, key=ceilings.get)
            rounds = [(ceiling(embedder, best, seconds=4.0), index_rate(subset, model, weights[model], best, work))
                      for _ in range(ROUNDS)]
            top = statistics.median(c for c, _ in rounds)
            rates[model] = statistics.median(e for _, e in rounds)
            lines.append(f"| {model} | {' / '.join(f'{ceilings[b]:.1f}' for b in BATCHES)} | {best} | {top:.1f} | "
                         f"{rates[model]:.1f} | {rates[model] / top:.2f} | "
                         f"{', '.join(f'{e / c:.2f}' for c, e in rounds)} |")
            print(lines[-1], flush=True)

        reference = reference_loop(paths[: args.reference_images], work / "features.npy")
        lines += ["", "## 3. Against the reference project's loop", "",
                  f"Keras `ResNet50(include_top=False)` + `GlobalMaxPooling2D`, `model.predict` per image, features "
                  f"in a list, written to one file at the end: {reference:.1f} images/s on the first "
                  f"{args.reference_images} of the same images (Keras {__import__('keras').__version__}, torch "
                  "backend).", "",
                  "| fashionrec model | indexing img/s | x reference |", "|---|---:|---:|"]
        lines += [f"| {model} | {rates[model]:.1f} | {rates[model] / reference:.1f} |" for model in MODELS]
        print("\n".join(lines[-4:]), flush=True)

        index_images(data / "images", args.catalog, metadata=data / "styles.csv", progress=False)
        catalog = Catalog.open(args.catalog)

        fp32_p5 = precision_at_5(catalog, catalog.model_vectors)
        fp16_p5 = precision_at_5(catalog, catalog.model_vectors.astype(np.float16).astype(np.float32))
        lines += ["", "## 4. float16 (int8: section 9)", "",
                  f"{catalog.model_name}; precision = leave-one-out articleType P@5 over the {len(catalog):,}-product "
                  "sample (copies left out, whitened as the catalog is). The int8 recipes are measured by "
                  "`benchmarks/int8.py` (section 9).", "",
                  "| variant | articleType P@5 | change |", "|---|---:|---:|",
                  f"| fp32 | {fp32_p5:.4f} | |",
                  f"| fp32 model, vectors stored as float16 | {fp16_p5:.4f} | {fp16_p5 - fp32_p5:+.4f} |"]
        print("\n".join(lines[-5:]), flush=True)
        photos = sorted((data / "queries_fullres").glob("*.jpg"))
        times = query_latency(args.catalog, photos)
        first = start_to_first_answer(args.catalog, photos[0])
        lines += ["", "## 5. Query latency", "",
                  f"`Recommender.by_image` on the {len(catalog):,}-product sample ({catalog.model_name}, "
                  f"{catalog.vectors.shape[1]}-d search vectors), the {len(photos)} full-resolution photos "
                  f"({statistics.mean(p.stat().st_size for p in photos) / 1e3:.0f} kB JPEGs) three times:", "",
                  "| stage | p50 ms | p95 ms |", "|---|---:|---:|"]
        for name, values in times.items():
            q = statistics.quantiles(values, n=20, method="inclusive")
            lines.append(f"| {name} | {statistics.median(values) * 1000:.1f} | {q[18] * 1000:.1f} |")
        lines += ["", f"`fashionrec serve`: process start to first `/recommend` answer: {first:.2f} s."]
        print("\n".join(lines[-9:]), flush=True)

        sizes = [int(s) for s in args.scale.split(",") if s]
        if sizes:
            lines += ["", "## 6. Search at scale", "",
                      f"Real catalog search vectors ({catalog.vectors.shape[1]}-d) tiled with noise; 200 queries; "
                      "recall@10 against exact search.", "",
                      "| vectors | method | build s | memory MB | p50 ms/query | recall@10 |",
                      "|---:|---|---:|---:|---:|---:|"]
            lines += scale_rows(catalog.vectors, sizes)

        started = time.perf_counter()
        similar_all(catalog, k=10)
        table_s = time.perf_counter() - started
        lines += ["", "## 7. Whole-catalog similar items (`fashionrec similar-all -k 10`)", "",
                  f"{len(catalog):,} products: {table_s:.1f} s. It is one blocked matrix product, so time grows with "
                  f"the square of the catalog: about {table_s * (44_000 / len(catalog)) ** 2 / 60:.1f} min for "
                  f"44k products and {table_s * (1_000_000 / len(catalog)) ** 2 / 3600:.0f} h for 1M on these 2 "
                  "cores (projections; at 1M use an ANN index per product instead)."]
        print(lines[-1], flush=True)

        small, large = peak_rss_of_indexing(subset, 100, work), peak_rss_of_indexing(subset, len(paths), work)
        lines += ["", "## 8. Memory while indexing", "",
                  f"Peak RSS of a process indexing 100 images: {small:.0f} MB; {len(paths)} images: {large:.0f} MB "
                  f"(efficientnet-lite2, batch {load_settings().batch_size}; batches stream through, nothing "
                  "accumulates)."]
        print(lines[-1], flush=True)

    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(lines)
    print(text)
    if args.write:
        kept = ""  # the other benchmarks' sections, below the marker, stay as they are
        if args.write.exists() and KEPT_MARKER in args.write.read_text(encoding="utf-8"):
            kept = "\n" + KEPT_MARKER + args.write.read_text(encoding="utf-8").split(KEPT_MARKER, 1)[1]
        args.write.write_text("# Performance\n\nSections 1-8 are generated by `python benchmarks/speed.py --write "
                              "docs/PERFORMANCE.md`; every figure in them comes from that one run.\n\n" + text + "\n"
                              + kept, encoding="utf-8")


if __name__ == "__main__":
    main()
