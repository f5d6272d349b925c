"""models/registry.py and spec.py: lookup by name, clear errors, identity of a model."""

from __future__ import annotations

import pytest

from fashionrec.errors import ModelError
from fashionrec.models import get_spec, list_models


def test_the_backbones_are_registered() -> None:
    specs = {spec.name: spec for spec in list_models()}
    assert set(specs) == {"resnet50", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2",
                          "efficientnet-lite2-mirrored", "efficientnet-lite2-int8"}
    assert specs["efficientnet-lite2-mirrored"].mirror and not specs["efficientnet-lite2"].mirror
    assert (specs["resnet50"].dim, specs["resnet50"].input_size, specs["resnet50"].pooling) == (2048, 224, "max")
    assert specs["efficientnet-lite2"].input_size == 260


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ModelError, match="choose one of: resnet50, efficientnet-lite0, efficientnet-lite1, efficientnet-lite2, "):
        get_spec("vgg16")


def test_overrides_change_the_model_id() -> None:
    spec = get_spec("efficientnet-lite2")
    other = get_spec("efficientnet-lite2", pooling="max")
    assert other.pooling == "max" and spec.pooling == "avg"
    assert spec.model_id("ab" * 32) != get_spec("efficientnet-lite2", taps=("head",)).model_id("ab" * 32)
    assert spec.model_id("ab" * 32) != other.model_id("ab" * 32)
    assert spec.model_id("ab" * 32) != spec.model_id("cd" * 32)


def test_model_ids_name_the_export_version() -> None:
    """Export version 2 (ReLU6 kept) changed every model id, so catalogs of version 1 are told apart."""
    from fashionrec.models import outdated_model
    from fashionrec.models import spec as spec_module

    spec = get_spec("efficientnet-lite2")
    current = spec.model_id("ab" * 32)
    assert outdated_model(current) is None
    original = spec_module.EXPORT_VERSION
    try:
        spec_module.EXPORT_VERSION = 1
        old = spec.model_id("ab" * 32)
    finally:
        spec_module.EXPORT_VERSION = original
    assert old != current and "older build of efficientnet-lite2" in outdated_model(old)
    assert "does not have" in outdated_model("vgg16:abcd:1234")
    assert get_spec("efficientnet-lite2-mirrored").fingerprint() != spec.fingerprint()
