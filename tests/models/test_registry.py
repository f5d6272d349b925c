"""models/registry.py and spec.py: lookup by name, clear errors, identity of a model."""

from __future__ import annotations

import pytest

from fashionrec.errors import ModelError
from fashionrec.models import get_spec, list_models


def test_the_backbones_are_registered() -> None:
    specs = {spec.name: spec for spec in list_models()}
    assert set(specs) == {"resnet50", "efficientnet-lite0", "efficientnet-lite2", "efficientnet-lite2-mirrored"}
    assert specs["efficientnet-lite2-mirrored"].mirror and not specs["efficientnet-lite2"].mirror
    assert (specs["resnet50"].dim, specs["resnet50"].input_size, specs["resnet50"].pooling) == (2048, 224, "max")
    assert specs["efficientnet-lite2"].input_size == 260


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ModelError, match="choose one of: resnet50, efficientnet-lite0, efficientnet-lite2, "):
        get_spec("vgg16")


def test_overrides_change_the_model_id() -> None:
    spec = get_spec("efficientnet-lite2")
    other = get_spec("efficientnet-lite2", pooling="max")
    assert other.pooling == "max" and spec.pooling == "avg"
    assert spec.model_id("ab" * 32) != other.model_id("ab" * 32)
    assert spec.model_id("ab" * 32) != spec.model_id("cd" * 32)


def test_existing_model_ids_are_unchanged_by_the_mirror_field() -> None:
    """Catalogs built before the mirrored variant existed keep their model id (fingerprint d601a78b)."""
    assert get_spec("efficientnet-lite2").fingerprint() == "d601a78b"
    assert get_spec("efficientnet-lite2-mirrored").fingerprint() != "d601a78b"
