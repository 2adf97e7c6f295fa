"""Neural fields: geometry (SDF) and appearance."""

from nsr.fields.appearance import AppearanceField, AppearanceFieldConfig
from nsr.fields.sdf import SDFField, SDFFieldConfig, SDFOutput

__all__ = ["AppearanceField", "AppearanceFieldConfig", "SDFField", "SDFFieldConfig", "SDFOutput"]
