import math

import pytest
import torch

from nsr.encodings import PositionalEncodingConfig
from nsr.fields import AppearanceFieldConfig, SDFFieldConfig


def _zero_crossing_radii(field, n=150):
    """Distance from the origin of the first zero crossing along n random directions (to 0.0025: the
    radius tolerance below is 3%, 0.009 at the smaller radius)."""
    d = torch.nn.functional.normalize(torch.randn(n, 3), dim=-1)
    t = torch.linspace(0, 1, 401)
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


def _sphere_points(n=200):
    gen = torch.Generator().manual_seed(5)
    directions = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen, dtype=torch.float64), dim=-1)
    return directions * (0.3 + 0.4 * torch.rand(n, 1, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("h", [1e-2, 1e-3])
def test_six_tap_laplacian_of_a_sphere_is_two_over_r(h):
    """f = |x| - r has Laplacian 2 / |x|. The 6-tap stencil's error is sum_i (h^2 / 12) d^4 f / dx_i^4 at
    some point of the stencil's arm; along axis i, f = sqrt(s^2 + a_i^2) with a_i the distance of the point
    to that axis, whose fourth derivative is at most 3 / a_i^3: |error| <= (h^2 / 4) sum_i 1 / a_i^3."""
    from nsr.fields.sdf import finite_difference_derivatives, stencil_offsets

    x = _sphere_points()
    rho = x.norm(dim=-1)
    offsets = stencil_offsets(6, dtype=torch.float64)
    values = ((x[None] + h * offsets[:, None]).norm(dim=-1) - 0.5).reshape(6, -1)
    grad, lap = finite_difference_derivatives(rho - 0.5, values, h)
    a = (rho[:, None] ** 2 - x**2).sqrt()
    bound = h**2 / 4 * (1 / a**3).sum(-1)
    assert ((lap - 2 / rho).abs() <= bound).all()
    assert ((lap - 2 / rho).abs() > 0.05 * bound).any()  # the bound is not vacuous
    assert torch.allclose(grad, x / rho[:, None], atol=h)


@pytest.mark.parametrize("h", [1e-2, 1e-3])
def test_four_tap_laplacian_of_a_sphere_has_the_tetrahedron_first_order_error(h):
    """The tetrahedron's third moment sum_k v_x v_y v_z = 4 leaves a first-order term: the stencil gives
    2 / |x| + 2 h f_xyz with f_xyz = 3 x y z / |x|^5, up to the fourth-order remainder
    (h^2 |v|^4 / 48) sum_k 3 / a_k^3 (a_k: distance from the centre to the line of tap k, |v| = sqrt 3)."""
    from nsr.fields.sdf import finite_difference_derivatives, stencil_offsets

    x = _sphere_points()
    rho = x.norm(dim=-1)
    offsets = stencil_offsets(4, dtype=torch.float64)
    values = ((x[None] + h * offsets[:, None]).norm(dim=-1) - 0.5).reshape(4, -1)
    _, lap = finite_difference_derivatives(rho - 0.5, values, h)
    first_order = 2 * h * 3 * x.prod(-1) / rho**5
    units = offsets / 3**0.5
    a = (x[None] - (x[None] * units[:, None]).sum(-1, keepdim=True) * units[:, None]).norm(dim=-1)
    bound = h**2 * 9 / 48 * (3 / a**3).sum(0)
    assert ((lap - 2 / rho - first_order).abs() <= bound).all()
    assert ((lap - 2 / rho).abs() > bound).any()  # the first-order term is there


@pytest.mark.parametrize(("gradient", "taps", "h", "tol"), [
    ("analytic", 6, 1e-3, 1e-4), ("finite_difference", 6, 1e-3, 1e-4), ("finite_difference", 4, 1e-5, 1e-3),
])  # fmt: skip
def test_sdf_field_laplacian_matches_the_trace_of_the_autograd_hessian(gradient, taps, h, tol):
    field = SDFFieldConfig(
        hidden_dim=32, num_layers=2, skip_layers=(), feature_dim=2, weight_norm=False, softplus_beta=10.0,
        gradient=gradient, finite_difference_taps=taps, finite_difference_step=h,
    ).build().double()  # fmt: skip
    x = (torch.rand(20, 3, dtype=torch.float64) - 0.5).requires_grad_(True)
    grad = torch.autograd.grad(field.sdf(x).sum(), x, create_graph=True)[0]
    trace = sum(torch.autograd.grad(grad[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(3))
    out = field.with_gradient(x.detach(), create_graph=True, laplacian=True)
    assert out.laplacian.shape == (20,) and out.gradient.shape == (20, 3)
    scale = trace.abs().max().item()
    assert scale > 0.1
    assert torch.allclose(out.laplacian, trace.detach(), atol=tol * scale)
    assert torch.allclose(out.gradient, grad.detach(), atol=1e-5 * grad.abs().max().item())
    out.laplacian.abs().mean().backward()  # the curvature loss reaches the weights
    assert field.layers[0].weight.grad.abs().sum() > 0
    plain = field.with_gradient(x.detach(), create_graph=False)
    assert plain.laplacian is None


def test_single_variance_starts_at_neus_value_and_learns():
    from nsr.fields import SingleVariance, VarianceConfig

    variance = SingleVariance(VarianceConfig())
    s = variance.inv_s()
    assert s.shape == () and s.item() == pytest.approx(math.exp(3.0), rel=1e-6)
    s.backward()
    assert variance.variance.grad.item() == pytest.approx(10 * math.exp(3.0), rel=1e-5)


def test_background_field_outputs():
    from nsr.fields import BackgroundFieldConfig

    field = BackgroundFieldConfig(hidden_dim=16, num_layers=2, colour_hidden_dim=8).build()
    points = torch.cat([torch.nn.functional.normalize(torch.randn(10, 3), dim=-1), torch.rand(10, 1)], -1)
    density, rgb = field(points, torch.nn.functional.normalize(torch.randn(10, 3), dim=-1))
    assert density.shape == (10,) and rgb.shape == (10, 3)
    assert (density >= 0).all() and ((rgb > 0) & (rgb < 1)).all()
