"""Composition roots: models built from configs, behind one contract (`nsr.models.base.Model`)."""

from nsr.models.base import LossOutput, Model, ModelError, RayBatch, RenderOutputs
from nsr.models.idr import IDRLossConfig, IDRModel, IDRModelConfig, mask_alpha
from nsr.models.neus import NeuSLossConfig, NeuSModel, NeuSModelConfig

ModelConfig = IDRModelConfig | NeuSModelConfig
"""Typed union of the model configs, told apart by their `kind` (grows with every renderer family)."""

__all__ = [
    "IDRLossConfig",
    "IDRModel",
    "IDRModelConfig",
    "LossOutput",
    "Model",
    "ModelConfig",
    "ModelError",
    "NeuSLossConfig",
    "NeuSModel",
    "NeuSModelConfig",
    "RayBatch",
    "RenderOutputs",
    "mask_alpha",
]
