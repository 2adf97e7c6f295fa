"""Composition roots: models built from configs, behind one contract (`nsr.models.base.Model`)."""

from nsr.models.base import LossOutput, Model, RayBatch, RenderOutputs
from nsr.models.idr import IDRLossConfig, IDRModel, IDRModelConfig, mask_alpha

ModelConfig = IDRModelConfig
"""Typed union of the model configs, told apart by their `kind` (grows with every renderer family)."""

__all__ = [
    "IDRLossConfig",
    "IDRModel",
    "IDRModelConfig",
    "LossOutput",
    "Model",
    "ModelConfig",
    "RayBatch",
    "RenderOutputs",
    "mask_alpha",
]
