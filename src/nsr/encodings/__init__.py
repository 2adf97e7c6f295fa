"""Input encodings for the geometry and appearance fields.

Each encoding has one dataclass config with a `kind` tag and a `build(in_dim)` method;
`EncodingConfig` is the typed union the fields accept.
"""

from nsr.encodings.base import Encoding, EncodingError
from nsr.encodings.fourier import FourierFeatures, FourierFeaturesConfig
from nsr.encodings.hashgrid import HashGrid, HashGridConfig
from nsr.encodings.nffb import NFFB, NFFBConfig
from nsr.encodings.positional import PositionalEncoding, PositionalEncodingConfig
from nsr.encodings.sh import SphericalHarmonics, SphericalHarmonicsConfig
from nsr.encodings.stylemod_nffb import StyleModNFFB, StyleModNFFBConfig

EncodingConfig = (
    PositionalEncodingConfig
    | FourierFeaturesConfig
    | SphericalHarmonicsConfig
    | HashGridConfig
    | NFFBConfig
    | StyleModNFFBConfig
)
"""Typed union of all encoding configs (grows with every new encoding)."""

ENCODING_CONFIGS: dict[str, type] = {
    "positional": PositionalEncodingConfig,
    "fourier": FourierFeaturesConfig,
    "sh": SphericalHarmonicsConfig,
    "hashgrid": HashGridConfig,
    "nffb": NFFBConfig,
    "stylemod-nffb": StyleModNFFBConfig,
}
"""Command-line name -> config class."""

__all__ = [
    "ENCODING_CONFIGS",
    "NFFB",
    "Encoding",
    "EncodingConfig",
    "EncodingError",
    "FourierFeatures",
    "FourierFeaturesConfig",
    "HashGrid",
    "HashGridConfig",
    "NFFBConfig",
    "PositionalEncoding",
    "PositionalEncodingConfig",
    "SphericalHarmonics",
    "SphericalHarmonicsConfig",
    "StyleModNFFB",
    "StyleModNFFBConfig",
]
