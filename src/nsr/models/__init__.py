"""Composition roots: models built from configs."""

from nsr.models.idr import IDRLossConfig, IDRModel, IDRModelConfig, LossOutput, RenderOutput, mask_alpha

__all__ = ["IDRLossConfig", "IDRModel", "IDRModelConfig", "LossOutput", "RenderOutput", "mask_alpha"]
