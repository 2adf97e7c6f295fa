"""Input encodings for the geometry and appearance fields.

Each encoding has one dataclass config with a `kind` tag and a `build(in_dim)` method;
`EncodingConfig` is the typed union the fields accept.
"""

from nsr.encodings.base import Encoding
from nsr.encodings.positional import PositionalEncoding, PositionalEncodingConfig

EncodingConfig = PositionalEncodingConfig
"""Typed union of all encoding configs (grows with every new encoding)."""

__all__ = ["Encoding", "EncodingConfig", "PositionalEncoding", "PositionalEncodingConfig"]
