"""Which model a catalog's vectors come from, and the one check that another model's vectors never mix with them."""

from __future__ import annotations

import os

from fashionrec.errors import CatalogError, ModelMismatchError


def require_model(catalog_dir: str | os.PathLike, catalog_model_id: str | None, loaded_model_id: str) -> None:
    """The one check that vectors of another model never enter a catalog nor get compared with its own: refuse a
    model whose vectors are not the catalog's: another backbone, other weights or other preprocessing.

    Raises:
        CatalogError: the catalog was never indexed (it has no model yet).
        ModelMismatchError: the model ids differ; the message says what to do.
    """
    if not catalog_model_id:
        raise CatalogError(f"the catalog {catalog_dir} was never indexed; run fashionrec index first")
    if catalog_model_id != loaded_model_id:
        raise ModelMismatchError(
            f"the catalog {catalog_dir} was built with {catalog_model_id}, but the model loaded is {loaded_model_id} "
            "(other weights or preprocessing): their vectors cannot be compared; use the catalog's model and weights, "
            "or a new catalog")
