"""Neural fields: geometry (SDF), appearance, NeuS's variance and the NeRF++ background."""

from nsr.fields.appearance import AppearanceField, AppearanceFieldConfig
from nsr.fields.background import BackgroundField, BackgroundFieldConfig
from nsr.fields.sdf import SDFField, SDFFieldConfig, SDFOutput
from nsr.fields.variance import SingleVariance, VarianceConfig

__all__ = [
    "AppearanceField",
    "AppearanceFieldConfig",
    "BackgroundField",
    "BackgroundFieldConfig",
    "SDFField",
    "SDFFieldConfig",
    "SDFOutput",
    "SingleVariance",
    "VarianceConfig",
]
