"""Backbones: what each model is (spec), where its weights are, and its one-time export to ONNX.

Only `export` (and the builders it imports) needs torch; everything else here is plain data.
"""

from fashionrec.models.registry import get_spec, list_models, outdated_model
from fashionrec.models.spec import KerasWeights, ModelSpec, PackageWeights

__all__ = ["KerasWeights", "ModelSpec", "PackageWeights", "get_spec", "list_models", "outdated_model"]
