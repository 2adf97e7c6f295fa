import pytest
import torch

from nsr.encodings import PositionalEncodingConfig
from nsr.fields import AppearanceFieldConfig, SDFFieldConfig


def _zero_crossing_radii(field, n=300):
    """Distance from the origin of the first zero crossing along n random directions."""
    d = torch.nn.functional.normalize(torch.randn(n, 3), dim=-1)
    t = torch.linspace(0, 1, 1001)
    with torch.no_grad():
        v = field.sdf((d[:, None] * t[None, :, None]).reshape(-1, 3)).reshape(n, -1)
    assert (v[:, 0] < 0).all() and (v[:, -1] > 0).all()
    return t[(v > 0).float().argmax(dim=1)]


@pytest.mark.parametrize("radius", [0.3, 0.6])
@pytest.mark.parametrize(("width", "depth", "skip"), [(128, 4, (2,)), (512, 8, (4,))])
def test_geometric_init_is_a_sphere(radius, width, depth, skip):
    field = SDFFieldConfig(init_radius=radius, hidden_dim=width, num_layers=depth, skip_layers=skip).build()
    radii = _zero_crossing_radii(field)
    assert radii.mean().item() == pytest.approx(radius, rel=0.03)
    assert radii.std().item() < 0.15 * radius
    # Near the surface it is a distance: unit gradients pointing outward.
    x = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1) * radius
    grad = field.with_gradient(x, create_graph=False).gradient
    assert (torch.nn.functional.cosine_similarity(grad, x) > 0.9).float().mean() > 0.95


def test_gradient_matches_finite_differences():
    field = SDFFieldConfig(
        hidden_dim=64, num_layers=3, skip_layers=(2,), feature_dim=4, weight_norm=False
    ).build()
    field = field.double()
    x = torch.rand(5, 3, dtype=torch.float64) - 0.5
    grad = field.with_gradient(x, create_graph=False).gradient
    eps = 1e-6
    for axis in range(3):
        d = torch.zeros(3, dtype=torch.float64)
        d[axis] = eps
        fd = (field.sdf(x + d) - field.sdf(x - d)) / (2 * eps)
        assert torch.allclose(grad[:, axis], fd.detach(), atol=1e-6)


def test_outputs_and_second_order_graph():
    field = SDFFieldConfig(hidden_dim=64, num_layers=4, skip_layers=(2,), feature_dim=8).build()
    x = torch.rand(6, 3)
    out = field.with_gradient(x, create_graph=True)
    assert out.sdf.shape == (6,) and out.features.shape == (6, 8) and out.gradient.shape == (6, 3)
    ((out.gradient.norm(dim=-1) - 1) ** 2).mean().backward()  # eikonal reaches the weights
    assert all(layer.parametrizations.weight.original1.grad.abs().sum() > 0 for layer in field.layers[:-1])


@pytest.mark.parametrize("mode", ["idr", "no_view_dir", "no_normal"])
def test_appearance_modes(mode):
    app = AppearanceFieldConfig(
        mode=mode, hidden_dim=16, num_layers=2, view_encoding=PositionalEncodingConfig(2)
    ).build(5)
    n = 4
    rgb = app(torch.rand(n, 3), torch.rand(n, 3), torch.rand(n, 3), torch.rand(n, 5))
    assert rgb.shape == (n, 3) and (rgb >= 0).all() and (rgb <= 1).all()
    # The inputs a mode drops do not change the colour.
    p, nrm, v, f = torch.rand(n, 3), torch.rand(n, 3), torch.rand(n, 3), torch.rand(n, 5)
    other = torch.rand(n, 3)
    if mode == "no_view_dir":
        assert torch.equal(app(p, nrm, v, f), app(p, nrm, other, f))
    if mode == "no_normal":
        assert torch.equal(app(p, nrm, v, f), app(p, other, v, f))
    if mode == "idr":
        assert not torch.equal(app(p, nrm, v, f), app(p, nrm, other, f))
