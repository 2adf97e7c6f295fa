"""Switching an encoding's kind on the `nsr train` command line, and overriding its nested fields."""

import pytest

from nsr.cli.train import parse
from nsr.config import ConfigError
from nsr.encodings import HashGridConfig, PositionalEncodingConfig, SphericalHarmonicsConfig


def test_nested_encoding_fields_of_the_preset_can_be_overridden():
    args = parse(["--out", "x", "--preset", "demo", "--model.sdf.encoding.num-frequencies", "4"])
    assert args.config.model.sdf.encoding == PositionalEncodingConfig(num_frequencies=4)


def test_switching_the_kind_then_overriding_its_fields():
    args = parse(
        [
            "--out", "x", "--preset", "demo",
            "--model.sdf.encoding", "hashgrid", "--model.sdf.encoding.num-levels", "8",
            "--model.sdf.gradient", "finite_difference", "--model.sdf.finite-difference-taps", "6",
            "--model.appearance.view-encoding.kind=sh",
        ]
    )  # fmt: skip
    sdf = args.config.model.sdf
    assert sdf.encoding == HashGridConfig(num_levels=8)
    assert sdf.gradient == "finite_difference" and sdf.finite_difference_taps == 6
    assert args.config.model.appearance.view_encoding == SphericalHarmonicsConfig()
    assert args.config.model.sdf.hidden_dim == 128  # the rest of the preset is kept


def test_naming_the_current_kind_keeps_the_preset_values():
    args = parse(["--out", "x", "--preset", "demo", "--model.sdf.encoding.kind", "positional"])
    assert args.config.model.sdf.encoding == PositionalEncodingConfig(num_frequencies=6)


def test_unknown_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="hashgrid"):
        parse(["--out", "x", "--model.sdf.encoding", "hashgird"])
