"""Input encodings for the geometry and appearance fields.

Each encoding has one dataclass config with a `kind` tag and a `build(in_dim)` method;
`EncodingConfig` is the typed union the fields accept.
"""

from nsr.encodings.base import Encoding
from nsr.encodings.fourier import FourierFeatures, FourierFeaturesConfig
from nsr.encodings.positional import PositionalEncoding, PositionalEncodingConfig
from nsr.encodings.sh import SphericalHarmonics, SphericalHarmonicsConfig

EncodingConfig = PositionalEncodingConfig | FourierFeaturesConfig | SphericalHarmonicsConfig
"""Typed union of all encoding configs (grows with every new encoding)."""

ENCODING_CONFIGS: dict[str, type] = {
    "positional": PositionalEncodingConfig,
    "fourier": FourierFeaturesConfig,
    "sh": SphericalHarmonicsConfig,
}
"""Command-line name -> config class."""

__all__ = [
    "ENCODING_CONFIGS",
    "Encoding",
    "EncodingConfig",
    "FourierFeatures",
    "FourierFeaturesConfig",
    "PositionalEncoding",
    "PositionalEncodingConfig",
    "SphericalHarmonics",
    "SphericalHarmonicsConfig",
]
