"""The catalog's search space: the transform from model vectors to search vectors (a whitening, then a tuning), and
every decision about it: fitted when the catalog is large enough, kept as products come and go (so derived copies of
unchanged products stay valid), refitted past a drift limit or on demand, a tuning added or removed, each change a
new immutable version (`space-<digest>.npz`) that the catalog switches to atomically. Drift is computed here only."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fashionrec.catalog.derived import SPACE_PREFIX, products_digest, publish, remove_superseded, space_path
from fashionrec.catalog.store import SPACE_KEY, CatalogStore
from fashionrec.catalog.tuning import Tuning, TuningPart
from fashionrec.catalog.whitening import MIN_PRODUCTS, SHRINKAGE, Whitening, fit_whitening, whitening_dim
from fashionrec.config import Settings, load_settings
from fashionrec.errors import CatalogError, FashionrecError

if TYPE_CHECKING:
    from fashionrec.catalog.catalog import Catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchSpace:
    """The transform from model vectors to search vectors: a whitening, then a tuning (either may be absent).

    Immutable: a refit or a new tuning makes a new space (a new file); the catalog switches to it atomically.
    """

    model_id: str  # the model whose vectors it transforms
    whitening: Whitening | None
    tuning: Tuning | None

    @property
    def digest(self) -> str:
        """Content address: the digest of every parameter and array (what the file is named by)."""
        digest = hashlib.sha256(json.dumps(self._meta(), sort_keys=True).encode())
        for name, array in sorted(self._arrays().items()):
            digest.update(f"{name}{array.dtype.str}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:32]

    @property
    def base_dim(self) -> int | None:
        """Length of the untuned part of a search vector (None: the whole vector is untuned)."""
        if self.tuning is None:
            return None
        return self.whitening.dim if self.whitening is not None else self.tuning.parts[0].matrix.shape[0]

    def apply(self, model_vectors: np.ndarray) -> np.ndarray:
        """Model vectors (n, d) or (d,) to search vectors."""
        vectors = self.whitening.apply(model_vectors) if self.whitening else np.asarray(model_vectors, np.float32)
        return self.tuning.apply(vectors) if self.tuning else vectors

    def without_tuning(self) -> SearchSpace:
        return SearchSpace(self.model_id, self.whitening, None)

    def with_tuning(self, tuning: Tuning) -> SearchSpace:
        return SearchSpace(self.model_id, self.whitening, tuning)

    def _meta(self) -> dict:
        meta: dict = {"model_id": self.model_id, "whitening": None, "tuning": None}
        if self.whitening is not None:
            meta["whitening"] = {"fitted_on": self.whitening.fitted_on, "dim": self.whitening.dim}
            if self.whitening.products:  # absent from spaces written before drift was measured (same digest)
                meta["whitening"].update(generation=self.whitening.generation, products=self.whitening.products)
            if self.whitening.shrinkage:  # absent from spaces of the older rule (same digest)
                meta["whitening"]["shrinkage"] = self.whitening.shrinkage
        if self.tuning is not None:
            meta["tuning"] = {"label": self.tuning.label, "look_label": self.tuning.look_label,
                              "fitted_on": self.tuning.fitted_on, "weights": self.tuning.weights}
        return meta

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        if self.whitening is not None:
            arrays.update(whitening_mean=self.whitening.mean, whitening_matrix=self.whitening.matrix)
        for part in self.tuning.parts if self.tuning else ():
            arrays[f"tuning_{part.name}"] = part.matrix
        return {name: np.asarray(array, dtype="<f4") for name, array in arrays.items()}

    def to_bytes(self) -> bytes:
        """The .npz file: the arrays, plus the parameters as UTF-8 JSON in a uint8 array (no pickle)."""
        buffer = io.BytesIO()
        meta = np.frombuffer(json.dumps(self._meta(), sort_keys=True).encode(), dtype=np.uint8)
        np.savez(buffer, meta=meta, **self._arrays())
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SearchSpace:
        """Read a space written by `to_bytes` (never unpickling anything)."""
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
        whitening = tuning = None
        if meta["whitening"] is not None:
            fit = meta["whitening"]
            whitening = Whitening(arrays["whitening_mean"], arrays["whitening_matrix"], fit["fitted_on"],
                                  fit.get("generation", 0), fit.get("products", 0), fit.get("shrinkage", 0.0))
        if meta["tuning"] is not None:
            info = meta["tuning"]
            parts = tuple(TuningPart(name, arrays[f"tuning_{name}"], float(weight))
                          for name, weight in info["weights"].items())
            tuning = Tuning(info["label"], info["look_label"], parts, info["fitted_on"])
        return cls(meta["model_id"], whitening, tuning)


def drift(fitted_products: int, kept: int, written_since: int) -> float:
    """How far a catalog has moved from the products its whitening was fitted on: the products written since the
    fit (new or replaced) plus those gone since, as a share of the products it was fitted on.

    The search space stays put while products come and go (so tunings, indexes and Milvus copies of unchanged
    products stay valid); past `config.REFIT_DRIFT` an index run fits it again (docs/QUALITY.md measured the cost
    of drift). Example: fitted on 1,000 products, 100 added and 50 removed since: 0.15.
    """
    if fitted_products <= 0:
        return 0.0
    return (written_since + max(0, fitted_products - kept)) / fitted_products


def whitening_drift(whitening: Whitening, written_since: int, products_now: int) -> float:
    """The drift of a catalog of `products_now` products from its whitening, `written_since` of them with a vector
    written after the fit (a colour backfill writes none): what `fashionrec info` shows and what a refit is decided
    by (`refresh_space`), the same figure for both."""
    return drift(whitening.products, products_now - written_since, written_since)


def save_space(catalog_dir: Path, space: SearchSpace) -> str:
    """Publish a search space file (if it is not there already); returns its digest."""
    digest = space.digest
    target = space_path(catalog_dir, digest)
    if not target.is_file():
        publish(target, lambda handle: handle.write(space.to_bytes()))
    return digest


def load_space(catalog_dir: Path, digest: str, model_id: str) -> SearchSpace:
    """The search space named `digest`, checked: present, its content hashing to its name, of this model.

    Raises:
        CatalogError: missing, corrupt, or of another model; the message says how to rebuild it.
    """
    path = space_path(catalog_dir, digest)
    fix = f"run fashionrec refit --catalog {catalog_dir} to fit it again"
    try:
        space = SearchSpace.from_bytes(path.read_bytes())
    except FileNotFoundError:
        raise CatalogError(f"the catalog's search space {path.name} is missing from {path.parent}; {fix}") from None
    except (OSError, ValueError, KeyError, EOFError, json.JSONDecodeError):  # never a hint to unpickle anything
        raise CatalogError(f"the catalog's search space {path} is damaged (not a search space fashionrec wrote); "
                           f"{fix}") from None
    if space.digest != digest:
        raise CatalogError(f"the catalog's search space {path} does not hold what its name says (damaged); {fix}")
    if space.model_id != model_id:
        raise CatalogError(f"the search space {path} transforms {space.model_id} vectors, not the catalog's "
                           f"{model_id}; {fix}")
    return space


@dataclass(frozen=True)
class SpaceUpdate:
    """What `refresh_space` did to the catalog's search space, and why."""

    refitted: bool  # a new whitening was fitted (search vectors of every product changed: a push sends them all)
    reason: str  # why it was fitted, or why not
    drift: float  # how far the products had moved from the fit (`whitening_drift`) before this update
    tuning_dropped: bool = False


def refresh_space(store: CatalogStore, wanted_dim: int, force: bool = False,
                  drift_limit: float = float("inf")) -> SpaceUpdate:
    """Keep the catalog's search space, or fit its whitening again, publishing any change as a new version.

    The space stays put as products come and go: products added later are whitened by the space as it is, so the
    search vectors of unchanged products, a tuning and the copies of them elsewhere (Milvus) stay valid. It is
    fitted when there is none yet and the catalog is large enough, when the wanted dimension changes, when `force`
    (`fashionrec refit`), or when the products have drifted past `drift_limit` since the fit. A tuning lives in the
    whitened space it was fitted in: a refit drops it (with a warning: tune again).
    """
    with store.snapshot():
        info = store.info()
        generation = store.generation()
        ids, hashes = store.id_hashes()
        current = _current_space(store, info)
        whitening = current.whitening if current else None
        moved = 0.0
        if whitening is not None:
            written, kept = store.changed_since(whitening.generation)
            moved = whitening_drift(whitening, written, written + kept)
        fits = whitening_dim(len(ids), wanted_dim, int(info["dim"]))
        wanted = min(wanted_dim, int(info["dim"]))
        whitening, reason = _refit_reason(whitening, wanted_dim, int(info["dim"]), force, moved, drift_limit)
        refit_now = bool(reason) and wanted > 0 and fits > 0
        if refit_now:
            log.info("fitting the catalog's whitening (%d products, %d dims): %s", len(ids), fits, reason)
            whitening = fit_whitening(store.vector_blocks(int(info["dim"])), fits,
                                      products_digest(ids, hashes), generation)
    untuned = SearchSpace(info["model_id"], whitening, None)
    tuning = current.tuning if current is not None and current.without_tuning().digest == untuned.digest else None
    dropped = current is not None and current.tuning is not None and tuning is None
    if dropped:
        log.warning("the catalog's whitening changed: its tuning (fitted in the old one) is dropped; "
                    "run fashionrec tune again")
    space = SearchSpace(info["model_id"], whitening, tuning) if whitening or tuning else None
    _publish_space(store, space, expected=info.get(SPACE_KEY, ""))
    if refit_now or not reason or wanted <= 0:
        return SpaceUpdate(refit_now, reason, moved, dropped)
    return SpaceUpdate(False, f"not fitted: {reason}, but too few products (at least {MIN_PRODUCTS})", moved, dropped)


def _refit_reason(whitening: Whitening | None, wanted_dim: int, model_dim: int, force: bool, moved: float,
                  drift_limit: float) -> tuple[Whitening | None, str]:
    """(the whitening still usable, or None; why it must be fitted now, "" when it stays), first reason first."""
    if min(wanted_dim, model_dim) <= 0:
        return None, "whitening is turned off (FASHIONREC_WHITEN_DIM=0)"
    if whitening is not None and whitening.shrinkage != SHRINKAGE:
        return None, "it was fitted by an older rule (no shrinkage)"
    if whitening is not None and whitening.dim != whitening_dim(whitening.products, wanted_dim, model_dim):
        return None, f"the wanted dimension changed from {whitening.dim} to {min(wanted_dim, model_dim)}"
    if force:
        return whitening, "asked for (fashionrec refit)"
    if whitening is None:
        return None, "none fitted yet"
    if moved > drift_limit:
        return whitening, f"the products drifted {moved:.0%} from the fit (more than {drift_limit:.0%})"
    return whitening, ""


def refit(catalog_dir: str | os.PathLike, settings: Settings | None = None) -> SpaceUpdate:
    """Fit the catalog's search space (its whitening) again on its products as they are now, as a new version.

    Raises:
        CatalogError: not a catalog, or never indexed.
    """
    settings = settings or load_settings()
    with CatalogStore(Path(catalog_dir).expanduser()) as store:
        if "model_id" not in store.info():
            raise CatalogError(f"the catalog {catalog_dir} was never indexed; run fashionrec index first")
        return refresh_space(store, settings.whiten_dim, force=True)


def _current_space(store: CatalogStore, info: dict[str, str]) -> SearchSpace | None:
    """The search space the catalog names, or None (none named, or its file is unusable: it is fitted again)."""
    if not info.get(SPACE_KEY):
        return None
    try:
        return load_space(store.catalog_dir, info[SPACE_KEY], info["model_id"])
    except CatalogError as exc:
        log.warning("%s", exc)
        return None


def untuned_space(catalog: Catalog) -> SearchSpace:
    """The catalog's search space without its tuning (what a tuning is fitted in)."""
    return catalog.space.without_tuning() if catalog.space else SearchSpace(catalog.model_id, None, None)


def save_tuning(catalog: Catalog, tuning: Tuning) -> None:
    """Make a new search space of the catalog's whitening and this tuning, and switch the catalog to it.

    Raises:
        FashionrecError: the tuning was fitted in another space than the catalog's (the catalog was refitted
            meanwhile: tune again), or on vectors of another length than the catalog's shape vectors.
    """
    untuned = untuned_space(catalog)
    if tuning.fitted_on != untuned.digest:
        raise FashionrecError("this tuning was fitted in another search space than the catalog's; run fashionrec "
                              "tune again")
    wrong = [part.name for part in tuning.parts if part.matrix.shape[0] != catalog.shape_dim]
    if wrong:
        raise FashionrecError(f"the tuning's {', '.join(wrong)} projection takes vectors of another length than the "
                              f"catalog's shape vectors ({catalog.shape_dim}; fit it on Catalog.shape_part(vectors))")
    _switch_space(catalog, untuned.with_tuning(tuning))


def remove_tuning(catalog: Catalog) -> None:
    """Forget the catalog's tuning: search goes back to the (whitened) model vectors."""
    untuned = untuned_space(catalog)
    _switch_space(catalog, untuned if untuned.whitening is not None else None)


def _switch_space(catalog: Catalog, space: SearchSpace | None) -> None:
    """Publish `space` and make it the catalog's, if the catalog's space is still the one this snapshot read."""
    with CatalogStore(catalog.catalog_dir) as store:
        _publish_space(store, space, expected=catalog.keys.space)


def _publish_space(store: CatalogStore, space: SearchSpace | None, expected: str) -> str:
    """Publish `space` (None: the model's own vectors) as the catalog's, if its space is still `expected`; older
    space files are removed. Returns the new space's digest ("" for none)."""
    digest = save_space(store.catalog_dir, space) if space else ""
    store.set_space(digest, expected=expected)
    remove_superseded(store.catalog_dir, [space_path(store.catalog_dir, digest).name] if space else [], SPACE_PREFIX)
    return digest
