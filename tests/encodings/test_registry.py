"""The encodings of this module work as view-direction encodings and survive a YAML round trip."""

import pytest
import torch

from nsr.config.io import from_dict, load_yaml, save_yaml, to_dict
from nsr.encodings import (
    ENCODING_CONFIGS,
    FourierFeaturesConfig,
    NFFBConfig,
    SphericalHarmonicsConfig,
    StyleModNFFBConfig,
)
from nsr.fields import AppearanceFieldConfig, SDFFieldConfig

GRID = dict(
    num_levels=3, log2_table_size=10, base_resolution=4, finest_resolution=16, hidden_dim=16, out_features=8
)
CONFIGS = {
    "fourier": FourierFeaturesConfig(width=8, sigma=2.0, seed=5),
    "sh": SphericalHarmonicsConfig(degree=3),
    "nffb": NFFBConfig(**GRID, w0=20.0),
    "stylemod-nffb": StyleModNFFBConfig(**GRID, attention=False),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_registered_under_its_command_line_name(name):
    assert ENCODING_CONFIGS[name] is type(CONFIGS[name])
    assert CONFIGS[name].kind == name


@pytest.mark.parametrize("name", list(CONFIGS))
def test_view_direction_encoding(name):
    app = AppearanceFieldConfig(view_encoding=CONFIGS[name], hidden_dim=16, num_layers=2).build(5)
    n = 6
    dirs = torch.nn.functional.normalize(torch.randn(n, 3), dim=-1)
    rgb = app(torch.rand(n, 3), torch.randn(n, 3), dirs, torch.randn(n, 5))
    assert rgb.shape == (n, 3) and ((rgb >= 0) & (rgb <= 1)).all()
    rgb.sum().backward()
    params = list(app.view_encoding.parameters())  # fourier and sh have none
    assert all(p.grad is not None for p in params) and all(p.grad.abs().sum() > 0 for p in params[:2])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_yaml_round_trip(name, tmp_path):
    config = AppearanceFieldConfig(view_encoding=CONFIGS[name])
    data = to_dict(config)
    assert data["view_encoding"]["kind"] == name
    assert from_dict(AppearanceFieldConfig, data) == config
    path = tmp_path / "appearance.yaml"
    save_yaml(config, path, kind="appearance")
    assert load_yaml(AppearanceFieldConfig, path, kind="appearance") == config


@pytest.mark.parametrize("name", ["fourier", "nffb", "stylemod-nffb"])
def test_geometry_encoding_in_the_sdf_field(name):
    config = SDFFieldConfig(
        encoding=CONFIGS[name], hidden_dim=32, num_layers=3, skip_layers=(2,), feature_dim=4
    )
    assert from_dict(SDFFieldConfig, to_dict(config)) == config
    field = config.build()
    out = field.with_gradient(torch.rand(8, 3) - 0.5, create_graph=True)
    assert out.sdf.shape == (8,) and out.gradient.shape == (8, 3) and torch.isfinite(out.gradient).all()
