"""Turn images into unit vectors with an ONNX Runtime session.

`load_model(name)` finds the weights, builds the ONNX file once if needed (torch, in `models.export`)
and opens an `Embedder`. The session is shared and thread-safe, so one Embedder serves a whole
process: the indexer, the API and the web app each load it once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fashionrec.config import Settings, load_settings
from fashionrec.errors import ModelError
from fashionrec.imaging.decode import ImageSource
from fashionrec.imaging.preprocess import load_model_input
from fashionrec.models import ModelSpec, get_spec
from fashionrec.models.garments import GARMENT_MAPS, LOG_NORM, classes_tag, locates_garments
from fashionrec.models.weights import file_sha256, locate_weights
from fashionrec.vectors import l2_normalize

log = logging.getLogger(__name__)


class Embedder:
    """A backbone ready to embed: its spec, identity and ONNX Runtime session.

    Example:
        >>> embedder = load_model("efficientnet-lite2")
        >>> embedder.embed_images(["shirt.jpg"]).shape
        (1, 1280)
    """

    def __init__(self, spec: ModelSpec, onnx: Path | bytes, model_id: str, settings: Settings) -> None:
        """Open an ONNX Runtime session on `onnx`: the exported file, or its bytes (a Ray worker gets the
        model through the object store, not from a cache folder it may not share)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.inference_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self._session = ort.InferenceSession(onnx if isinstance(onnx, bytes) else str(onnx), options,
                                                 providers=providers)
        except Exception as exc:  # ORT raises its own untyped errors for a bad file
            where = "" if isinstance(onnx, bytes) else f" {onnx}"
            raise ModelError(f"cannot load the ONNX model{where}: {exc}; delete it to rebuild") from None
        self._input = self._session.get_inputs()[0].name
        self._outputs = [output.name for output in self._session.get_outputs()]
        self.spec = spec
        self.model_id = model_id
        self.onnx_path = None if isinstance(onnx, bytes) else Path(onnx)
        self.max_pixels = settings.max_image_pixels
        self.batch_size = settings.batch_size

    @property
    def name(self) -> str:
        """The backbone's registered name."""
        return self.spec.name

    @property
    def dim(self) -> int:
        """Length of every vector this embedder returns."""
        return self.spec.dim

    def prepare(self, image: ImageSource) -> np.ndarray:
        """Decode and preprocess one image into this model's input (3, S, S).

        Raises:
            ImageError: the image cannot be used.
        """
        return load_model_input(image, self.spec.preprocessing, self.max_pixels)

    def embed_batch(self, batch: np.ndarray) -> np.ndarray:
        """Preprocessed images (N, 3, S, S) to unit vectors (N, dim), float32.

        Rows are independent of what else is in the batch (checked bit for bit in the tests), so a
        resumed or re-batched indexing run gives identical vectors.
        """
        if batch.ndim != 4 or batch.shape[1:] != (3, self.spec.input_size, self.spec.input_size):
            raise ValueError(f"expected a batch of shape (N, 3, {self.spec.input_size}, {self.spec.input_size}), "
                             f"got {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        features = self._session.run(self._outputs[:1], {self._input: np.ascontiguousarray(batch, dtype=np.float32)})
        return l2_normalize(features[0])

    @property
    def on_gpu(self) -> bool:
        """Whether the model runs on a GPU (ONNX Runtime's CUDA provider), where batches pay (`models.shared_runs`)."""
        return "CUDAExecutionProvider" in self._session.get_providers()

    @property
    def locates(self) -> bool:
        """Whether this model also says where garments are (`embed_and_locate`): EfficientNet-Lite's graph does."""
        return self._outputs[1:] == [GARMENT_MAPS, LOG_NORM]

    def embed_and_locate(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like `embed_batch`, and from the same pass the garment class maps (N, C, h, w) and the logits'
        log-sum-exp (N,) that `models.garments.find_garments` reads.

        Raises:
            ModelError: this model has no classifier to locate with (`locates` is False).
        """
        if not self.locates:
            raise ModelError(f"{self.name} cannot locate garments: its network has no ImageNet classifier")
        if batch.ndim != 4 or len(batch) == 0:
            raise ValueError(f"expected a non-empty batch of shape (N, 3, S, S), got {batch.shape}")
        features, maps, log_norm = self._session.run(
            self._outputs, {self._input: np.ascontiguousarray(batch, dtype=np.float32)})
        return l2_normalize(features), maps, log_norm

    def embed_images(self, images: Sequence[ImageSource]) -> np.ndarray:
        """Images (paths, bytes or PIL images) to unit vectors (N, dim), in batches.

        Raises:
            ImageError: one of the images cannot be used (use the indexer to skip bad files instead).
        """
        chunks = [
            self.embed_batch(np.stack([self.prepare(image) for image in images[start : start + self.batch_size]]))
            for start in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), dtype=np.float32)

    def embed_image(self, image: ImageSource) -> np.ndarray:
        """One image to its unit vector (dim,)."""
        return self.embed_images([image])[0]


def load_model(
    name: str | None = None,
    weights: str | os.PathLike | None = None,
    settings: Settings | None = None,
) -> Embedder:
    """Load a backbone for inference, building its ONNX file into the cache the first time.

    Args:
        name: a registered model (see `fashionrec models list`); default from settings.
        weights: a weights file to use instead of the standard one (resnet50: a Keras .h5).
        settings: defaults to `load_settings()`.

    Returns:
        An `Embedder` whose `model_id` names the model, its weights hash and its preprocessing.

    Raises:
        ModelError: unknown name, or the ONNX file cannot be built (e.g. torch missing; an int8 model's ranges that
            do not fit: `models.export.export_onnx`).
        WeightsNotFoundError: the weights are not available; the message says where to put them.

    Example:
        >>> load_model().name
        'efficientnet-lite2'
    """
    settings = settings or load_settings()
    spec = get_spec(name or settings.default_model)
    weights_path = locate_weights(spec, settings, weights)
    weights_sha = file_sha256(weights_path)
    onnx_path = settings.models_dir / _onnx_file_name(spec, weights_sha)
    plain = settings.models_dir / f"{spec.model_id(weights_sha).replace(':', '-')}.onnx"
    if not onnx_path.is_file() and plain.is_file() and not _can_export():
        # A server that built its model before garments were located, and has no torch now: same vectors, no regions.
        log.warning("%s cannot be rebuilt to locate garments (no torch): photos are answered whole", onnx_path.name)
        onnx_path = plain
    if not onnx_path.is_file():
        from fashionrec.models.export import export_onnx

        export_onnx(spec, weights_path, onnx_path)
    return Embedder(spec, onnx_path, spec.model_id(weights_sha), settings)


def _can_export() -> bool:
    """Whether torch is there to build an ONNX file."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _onnx_file_name(spec: ModelSpec, weights_sha256: str) -> str:
    """The cache file for these weights and this spec (kept here so loading never imports torch)."""
    stem = spec.model_id(weights_sha256).replace(":", "-")
    # The graph that also locates garments is named by its class list: a new list builds a new file.
    return f"{stem}-garments{classes_tag()}.onnx" if locates_garments(spec) else f"{stem}.onnx"
