"""The NeuS volume renderer on analytic SDFs, with tolerances derived from the rendering equations.

Notation: a ray x(t) = o + t d meets the zero level set at t*, with c = |cos| of the angle between the ray
and the surface normal there. s is the inverse standard deviation (`inv_s`), Phi_s(x) = sigmoid(s x).

Continuous NeuS (cos anneal ratio 1): along a ray the SDF f(t) is decreasing near t*, the
transmittance is T(t) = Phi_s(f(t)) and the weight density is w(t) = -dT/dt. Writing t(u) for the depth
where f = u, the expected depth is E[t] = E_u[t(u)] with u logistic of mean 0 and variance pi^2 / (3 s^2).

- Plane (f linear in t): t(u) is linear, so E[t] = t* exactly (NeuS's unbiasedness). The discrete
  weights are then exactly the increments of Phi_s(f) over the sections, w_i = Phi_i - Phi_{i+1}.
- Sphere of radius r: f = |x| - r is convex along the ray, t''(0) = f'' / |f'|^3 = sin^2 / (r c^3), so
  E[t] - t* = t''(0) / 2 * Var(u) = pi^2 sin^2 / (6 r c^3 s^2) + O(s^-4)             (curvature bias)
- Discretisation: the rendered depth averages the section midpoints with the weights of the sections;
  a midpoint is within delta_i / 2 of every point of its section, so the rendered depth differs from
  the continuous mean by at most half the longest section carrying the weight, at most half the coarse
  spacing delta = (far - near) / S (up-sampling only adds boundaries). The section ends' SDF is estimated
  from the midpoint and the cosine, exact for a plane and off by at most f'' delta^2 / 8 for the sphere,
  which moves the crossing by at most sin^2 delta^2 / (8 r c).
"""

import math

import pytest
import torch
import torch.nn.functional as F

from nsr.renderers import (
    FieldSamples,
    OccupancyGridConfig,
    VolumeRenderer,
    VolumeRendererConfig,
    composite_weights,
    intersect_sphere,
    inverted_sphere,
    neus_alpha,
)

RADIUS = 0.5


def sphere_sdf(x, radius=RADIUS):
    return x.norm(dim=-1) - radius


def sphere_field(colour=(0.2, 0.6, 0.9), radius=RADIUS):
    c = torch.tensor(colour)

    def field_fn(points, view_dirs):
        return FieldSamples(
            sdf=sphere_sdf(points, radius), gradient=F.normalize(points, dim=-1), rgb=c.expand_as(points)
        )

    return field_fn


def rays_towards(targets, origin=(0.0, 0.0, -3.0)):
    t = torch.as_tensor(targets, dtype=torch.float32)
    o = torch.tensor(origin).expand(len(t), 3).clone()
    return o, F.normalize(t - o, dim=-1)


def sphere_hits(o, d, radius=RADIUS):
    """Depth of the first hit, |cos| and sin^2 of the incidence angle (valid where the ray hits)."""
    b = (o * d).sum(-1)
    disc = b**2 - ((o * o).sum(-1) - radius**2)
    t = -b - disc.clamp_min(0).sqrt()
    normal = F.normalize(o + d * t[:, None], dim=-1)
    c = -(normal * d).sum(-1)
    return t, c, 1 - c**2


def curvature_bias(c, sin2, s, radius=RADIUS):
    return math.pi**2 * sin2 / (6 * radius * c**3 * s**2)


def render(cfg, o, d, s, sdf=sphere_sdf, field_fn=None, ratio=1.0, **kwargs):
    return VolumeRenderer(cfg).render(
        o, d, sdf, field_fn or sphere_field(), torch.tensor(float(s)), ratio, **kwargs
    )


# ------------------------------------------------------------------------------------------------- sphere
@pytest.mark.parametrize(
    ("cfg", "s"),
    [
        (VolumeRendererConfig(num_samples=256, num_importance=0), 1e4),  # sharp: one section takes it all
        (VolumeRendererConfig(), 1e3),  # NeuS's defaults: 64 coarse + 4 rounds of 16 up-sampled
        (VolumeRendererConfig(num_samples=32, num_importance=32, up_sample_steps=2), 300.0),
    ],
)
def test_sphere_opacity_and_depth_within_the_derived_tolerance(cfg, s):
    """Opacity ~1 for rays that hit, ~0 for rays that miss; depth within delta/2 + curvature terms."""
    ys = torch.linspace(0.0, 0.42, 15)  # hits with |cos| >= 0.55 and f <= -0.1 at the chord's middle
    misses = torch.tensor([0.62, 0.8, 1.2])  # closest approach >= 0.1 outside the sphere
    targets = [[0.0, float(y), 0.0] for y in torch.cat([ys, misses])]
    o, d = rays_towards(targets)
    out = render(cfg, o, d, s)
    hit = torch.arange(len(targets)) < len(ys)
    # 1 - opacity = Phi_s(min f) / Phi_s(f(near)) <= sigmoid(-s * 0.1) for hits; for misses every section
    # has f >= 0.1, so the opacity is at most 1 - Phi_s(0.1) / 1 = sigmoid(-s * 0.1).
    bound = torch.sigmoid(torch.tensor(-s * 0.1)).item() + 1e-5
    assert (out.opacity[hit] >= 1 - bound).all()
    assert (out.opacity[~hit] <= bound).all()
    t_star, c, sin2 = sphere_hits(o, d)
    near, far, _ = intersect_sphere(o, d, cfg.bounding_radius)
    delta = (far - near) / cfg.num_samples
    tol = delta / 2 + sin2 * delta**2 / (8 * RADIUS * c) + curvature_bias(c, sin2, s) + 1e-5
    err = (out.depth - t_star).abs()
    assert (err[hit] <= tol[hit]).all(), (err[hit], tol[hit])
    if cfg.num_importance == 0:  # the bound is tight when the coarse sections are the only ones
        assert err[hit].max() > 0.3 * (delta[hit].max() / 2)
    # Normals: the sphere's normal at the hit point.
    normal = F.normalize(o + d * t_star[:, None], dim=-1)
    assert torch.allclose(out.normals[hit], normal[hit], atol=0.02)


def test_sphere_depth_bias_is_the_curvature_bias_of_the_logistic():
    """With sections much finer than the logistic (s delta << 1) the depth error is the curvature bias
    pi^2 sin^2 / (6 r c^3 s^2) of the continuous equation (it vanishes for a plane): measured within 10%."""
    s = 200.0
    ys = torch.linspace(0.1, 0.38, 8)
    o, d = rays_towards([[0.0, float(y), 0.0] for y in ys])
    out = render(VolumeRendererConfig(num_samples=1024, num_importance=0), o, d, s)
    t_star, c, sin2 = sphere_hits(o, d)
    predicted = curvature_bias(c, sin2, s)
    assert torch.allclose(out.depth - t_star, predicted, rtol=0.1, atol=2e-6)


def test_weights_sum_to_at_most_one_and_to_one_at_a_surface():
    gen = torch.Generator().manual_seed(1)
    targets = (torch.rand(200, 3, generator=gen) - 0.5) * 1.4
    o, d = rays_towards(targets)
    out = render(VolumeRendererConfig(), o, d, 500.0, training=True)
    w = out.samples.weights
    assert (w >= 0).all() and (w.sum(-1) <= 1 + 1e-6).all()
    assert torch.allclose(w.sum(-1), out.opacity)
    b = (o * d).sum(-1)
    closest = ((o * o).sum(-1) - b**2).clamp_min(0).sqrt()
    through = closest < RADIUS - 0.05
    assert 50 < through.sum() < 180
    assert torch.allclose(out.opacity[through], torch.ones(int(through.sum())), atol=1e-4)


def test_rays_that_miss_the_bounding_sphere_render_nothing():
    o, d = rays_towards([[0.0, 3.0, 0.0], [0.0, 0.0, -6.0]])  # misses; points away
    out = render(VolumeRendererConfig(), o, d, 100.0)
    assert torch.equal(out.opacity, torch.zeros(2)) and torch.equal(out.rgb, torch.zeros(2, 3))
    assert not out.samples.inside.any()


# -------------------------------------------------------------------------------------- plane: unbiasedness
PLANE_NORMAL = F.normalize(torch.tensor([0.3, -0.2, -1.0]), dim=0)
PLANE_POINT = torch.tensor([0.0, 0.0, 0.2])


def plane_sdf(x):
    return (x - PLANE_POINT.to(x)) @ PLANE_NORMAL.to(x)


def plane_field(points, view_dirs):
    normal = PLANE_NORMAL.to(points).expand_as(points)
    return FieldSamples(sdf=plane_sdf(points), gradient=normal, rgb=torch.ones_like(points))


def plane_rays():
    o, d = rays_towards([[0.0, 0.0, 0.0], [0.5, 0.3, 0.0], [-0.5, 0.4, 0.0], [0.3, -0.4, 0.1]])
    t_star = -((o - PLANE_POINT) @ PLANE_NORMAL) / (d @ PLANE_NORMAL)
    return o, d, t_star, -(d @ PLANE_NORMAL)


def test_plane_weights_are_the_logistic_cdf_increments():
    """For a linear SDF and cos anneal ratio 1 the discrete weights are exactly Phi_s(f(b_i)) - Phi_s(f(b_{i+1}))
    (normalised by Phi_s at the first boundary); in float64 to 1e-12."""
    o, d, _, _ = plane_rays()
    o, d, s = o.double(), d.double(), torch.tensor(80.0, dtype=torch.float64)
    renderer = VolumeRenderer(VolumeRendererConfig(num_samples=128, num_importance=0))
    out = renderer.render(o, d, plane_sdf, plane_field, s)
    smp = out.samples
    bounds = torch.cat([smp.depths - smp.deltas / 2, (smp.depths + smp.deltas / 2)[:, -1:]], dim=1)
    cdf = torch.sigmoid(s * plane_sdf(o[:, None] + d[:, None] * bounds[..., None]))
    expected = (cdf[:, :-1] - cdf[:, 1:]) / cdf[:, :1]
    assert out.opacity.dtype == torch.float64 and (expected.max(1).values > 0.05).all()
    assert torch.allclose(smp.weights, expected, rtol=0, atol=1e-12)


def test_cos_annealing_ratio_one_is_unbiased_and_smaller_ratios_bias_by_the_predicted_amount():
    """Ratio 1 (the true cosine): weights peak at the surface and E[t] = t* for a plane. A ratio r < 1
    overestimates the slope, k = (1 - r)(1 + c)/2 + r c > c, so T(t) = Phi_s(f)^gamma with gamma = k / c and
    E[t] - t* = (1 / (s c)) * integral(sigmoid(-x)^gamma - [x < 0]) dx (< 0: the surface appears early)."""
    o, d, t_star, c = plane_rays()
    s, count = 50.0, 1024
    cfg = VolumeRendererConfig(num_samples=count, num_importance=0)
    out = render(cfg, o, d, s, plane_sdf, plane_field, ratio=1.0)
    near, far, _ = intersect_sphere(o, d, 1.0)
    delta = (far - near) / count
    assert torch.allclose(out.depth, t_star, atol=2e-6)
    peak = out.samples.depths.gather(1, out.samples.weights.argmax(1, keepdim=True))[:, 0]
    assert ((peak - t_star).abs() <= delta / 2 + 1e-6).all()

    x = torch.linspace(-60, 60, 240001, dtype=torch.float64)
    for ratio in (0.0, 0.5):
        biased = render(cfg, o, d, s, plane_sdf, plane_field, ratio=ratio)
        k = (1 - ratio) * (1 + c.double()) / 2 + ratio * c.double()
        gamma = k / c.double()
        integrand = torch.sigmoid(-x)[None] ** gamma[:, None] - (x < 0).double()[None]
        predicted = torch.trapezoid(integrand, x, dim=1) / (s * c.double())
        assert (predicted < -5e-5).all()
        assert torch.allclose((biased.depth - t_star).double(), predicted, rtol=0.05, atol=2e-6)


def test_neus_alpha_matches_the_reference_formula():
    """The log-space alpha equals NeuS's (p + 1e-5) / (c + 1e-5) where the guards are negligible."""
    gen = torch.Generator().manual_seed(0)
    sdf = (torch.rand(4000, generator=gen) - 0.5) * 0.2
    cos = torch.rand(4000, generator=gen) * 2 - 1
    deltas = torch.rand(4000, generator=gen) * 0.05
    inv_s = torch.tensor(60.0)
    for ratio in (0.0, 0.3, 1.0):
        alpha, log_keep = neus_alpha(sdf, cos, deltas, inv_s, ratio)
        iter_cos = -(F.relu(-cos * 0.5 + 0.5) * (1.0 - ratio) + F.relu(-cos) * ratio)
        prev_cdf = torch.sigmoid((sdf - iter_cos * deltas * 0.5) * inv_s)
        next_cdf = torch.sigmoid((sdf + iter_cos * deltas * 0.5) * inv_s)
        reference = ((prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5)).clip(0.0, 1.0)
        # The guards change alpha by at most 1e-5 / Phi_s(f_prev): compare where that is below 2e-4.
        fair = prev_cdf > 0.05
        assert fair.float().mean() > 0.5
        assert torch.allclose(alpha[fair], reference[fair], atol=2e-4)
        assert torch.allclose(torch.exp(log_keep), 1 - alpha, atol=1e-6)
    # Deep inside, where Phi underflows, the ratio is still exact: 1 - alpha = exp(s * iter_cos * delta).
    alpha, _ = neus_alpha(
        torch.tensor([-5.0]), torch.tensor([-1.0]), torch.tensor([0.01]), torch.tensor(100.0)
    )
    assert alpha.item() == pytest.approx(1 - math.exp(-1.0), rel=1e-5)


def test_composite_weights():
    alpha = torch.tensor([[0.5, 0.5, 1.0, 0.3]])
    w, remaining = composite_weights(alpha, torch.log1p(-alpha))
    assert torch.allclose(w, torch.tensor([[0.5, 0.25, 0.25, 0.0]]))
    assert remaining.item() == 0.0


# ------------------------------------------------------------------------------------------------- sampling
def test_up_sampling_concentrates_samples_at_the_surface():
    ys = torch.linspace(0.0, 0.4, 9)
    o, d = rays_towards([[0.0, float(y), 0.0] for y in ys])
    t_star, _, _ = sphere_hits(o, d)
    coarse = VolumeRenderer(VolumeRendererConfig(num_samples=64, num_importance=0))
    fine = VolumeRenderer(VolumeRendererConfig(num_samples=64, num_importance=64))
    near, far, _, _ = fine.ray_bounds(o, d)
    b_coarse = coarse.sample(o, d, sphere_sdf, near, far)
    b_fine = fine.sample(o, d, sphere_sdf, near, far)
    assert b_fine.shape == (9, 129) and (b_fine[:, 1:] >= b_fine[:, :-1]).all()
    delta = ((far - near) / 64)[:, None]
    close = lambda b: ((b - t_star[:, None]).abs() < delta).sum(1)  # noqa: E731
    assert (close(b_coarse) <= 2).all()
    assert (close(b_fine) >= 40).all()  # the 64 new boundaries pile up within one coarse section
    # The section that contains the surface is at most 1/20 of a coarse section.
    above = (b_fine > t_star[:, None]).float().argmax(1)
    rows = torch.arange(9)
    assert ((b_fine[rows, above] - b_fine[rows, above - 1]) < delta[:, 0] / 20).all()


def test_training_samples_are_jittered_and_sorted():
    o, d = rays_towards([[0.0, 0.1, 0.0]] * 3)
    renderer = VolumeRenderer(VolumeRendererConfig(num_samples=16, num_importance=16))
    near, far, _, _ = renderer.ray_bounds(o, d)
    a = renderer.sample(o, d, sphere_sdf, near, far, training=True)
    assert (a[:, 1:] >= a[:, :-1]).all()
    assert not torch.equal(a[0], a[1])
    assert torch.allclose(a[:, 0], near) and torch.allclose(a[:, -1], far)
    b = renderer.sample(o, d, sphere_sdf, near, far, training=False)
    assert torch.equal(b[0], b[1])


# ------------------------------------------------------------------------------------------ occupancy grid
def cell_distance_range(centres, half):
    """Smallest and largest distance from the origin to the points of axis-aligned cubes."""
    nearest = (centres.abs() - half).clamp_min(0)
    farthest = centres.abs() + half
    return nearest.norm(dim=-1), farthest.norm(dim=-1)


@pytest.mark.parametrize(
    ("radius", "centre", "lipschitz", "jitter", "steepness"),
    [
        (0.5, (0.0, 0.0, 0.0), 1.0, 0, 1.0),
        (0.37, (0.11, -0.2, 0.05), 1.0, 2, 1.0),
        (0.6, (-0.05, 0.1, 0.0), 2.0, 0, 2.0),  # a field twice as steep as a distance, L = 2
    ],
)
def test_occupancy_grid_never_culls_a_cell_the_surface_crosses(radius, centre, lipschitz, jitter, steepness):
    cfg = OccupancyGridConfig(enabled=True, resolution=24, lipschitz=lipschitz, jitter_points=jitter)
    grid = cfg.build(1.0)
    c = torch.tensor(centre)
    grid.update(lambda x: steepness * ((x - c).norm(dim=-1) - radius), torch.tensor(1e4))
    half = grid.cell_size / 2
    lo, hi = cell_distance_range(grid.cell_centres() - c, half)
    crossed = (lo <= radius) & (hi >= radius)  # the sphere's surface meets the closed cell
    occupied = grid.occupied.flatten()
    assert crossed.sum() > 100
    assert occupied[crossed].all()
    # Cells farther from the surface than the bound L * half-diagonal (+ the tiny density margin) are culled.
    dist = torch.maximum(lo - radius, radius - hi).clamp_min(0)  # distance from the cell to the surface
    far_empty = dist > lipschitz * half * math.sqrt(3) * 2 + 6 / 1e4
    assert far_empty.float().mean() > 0.5
    assert not occupied[far_empty].any()


def test_occupancy_margin_grows_with_the_logistic_scale():
    grid = OccupancyGridConfig(resolution=16).build(1.0)
    grid.update(sphere_sdf, torch.tensor(1e4))
    sharp = grid.occupied_fraction().item()
    grid.update(sphere_sdf, torch.tensor(10.0))  # 6 / s = 0.6: nearly every cell
    assert grid.occupied_fraction().item() > 0.8 > sharp + 0.3
    state = grid.state_dict()
    assert set(state) == {"occupied", "dilated"}


def test_occupancy_span_brackets_every_occupied_cell_on_the_ray():
    """A dense walk along random rays finds no point in an occupied cell outside the shrunk span."""
    grid = OccupancyGridConfig(resolution=16, lipschitz=1.0).build(1.0)
    grid.update(lambda x: (x - torch.tensor([0.2, 0.1, -0.1])).norm(dim=-1) - 0.3, torch.tensor(1e4))
    gen = torch.Generator().manual_seed(2)
    o = F.normalize(torch.randn(300, 3, generator=gen), dim=-1) * 2.5
    d = F.normalize(torch.tensor([0.2, 0.1, -0.1]) + (torch.rand(300, 3, generator=gen) - 0.5) - o, dim=-1)
    near, far, hits = intersect_sphere(o, d, 1.0)
    new_near, new_far, any_hit = grid.ray_span(o, d, near, far)
    t = near[:, None] + (far - near)[:, None] * torch.linspace(0, 1, 4001)
    occupied = grid.lookup((o[:, None] + d[:, None] * t[..., None]).reshape(-1, 3)).view(300, -1)
    inside = (t >= new_near[:, None] - 1e-6) & (t <= new_far[:, None] + 1e-6)
    assert occupied[hits].any(1).sum() > 50
    assert not (occupied & ~inside).any()
    assert ((new_far - new_near)[any_hit & hits] < (far - near)[any_hit & hits]).float().mean() > 0.9


def test_rendering_with_the_occupancy_grid_matches_rendering_without():
    ys = torch.linspace(0.0, 0.42, 12)
    o, d = rays_towards([[0.0, float(y), 0.0] for y in ys] + [[0.0, 0.8, 0.0]])
    cfg = VolumeRendererConfig(num_samples=32, num_importance=32, up_sample_steps=2)
    grid = cfg.occupancy.build(cfg.bounding_radius)
    s = torch.tensor(500.0)
    grid.update(sphere_sdf, s)
    assert grid.occupied_fraction() < 0.3
    plain = render(cfg, o, d, s)
    skipped = render(cfg, o, d, s, occupancy=grid)
    assert torch.allclose(plain.opacity, skipped.opacity, atol=1e-4)
    t_star, _, _ = sphere_hits(o, d)
    # Denser samples in the shrunk span: at least as close to the surface as without the grid.
    assert (skipped.depth[:12] - t_star[:12]).abs().max() <= (
        plain.depth[:12] - t_star[:12]
    ).abs().max() + 1e-5
    assert (skipped.samples.deltas[:12].max(1).values < plain.samples.deltas[:12].max(1).values).all()


# ----------------------------------------------------------------------------------------------- background
def test_background_field_renders_a_known_environment_behind_the_object():
    """An environment at infinity whose colour is (d + 1) / 2 for view direction d: rays that miss the
    object see it (the background's last section is infinite, so any density makes it opaque), rays that
    hit the object see the object."""

    def environment(points, view_dirs):
        assert points.shape[1] == 4 and (points[:, 3] <= 1 + 1e-6).all()
        return torch.full((points.shape[0],), 1e-3), (view_dirs + 1) / 2

    cfg = VolumeRendererConfig(background="field", num_samples=32, num_importance=32, up_sample_steps=2)
    o, d = rays_towards(
        [[0.0, 0.0, 0.0], [0.1, -0.2, 0.0], [0.0, 0.9, 0.0], [1.5, 1.5, 0.0], [0.0, 9.0, 3.0]]
    )
    out = render(cfg, o, d, 1e3, background_fn=environment)
    assert torch.allclose(out.rgb[:2], torch.tensor([0.2, 0.6, 0.9]).expand(2, 3), atol=1e-4)
    assert torch.allclose(out.rgb[2:], (d[2:] + 1) / 2, atol=1e-4)
    assert torch.allclose(out.background_rgb, (d + 1) / 2, atol=1e-4)


def test_background_dome_is_seen_where_the_ray_crosses_it():
    """A dome: empty up to distance D from the centre, opaque beyond, coloured by the direction of the
    point, g(x) = (x / |x| + 1) / 2 (Lipschitz 1/2 on the sphere). The rendered colour is g at the first
    sample past the crossing p of the ray with the dome; with the samples at t0 / u and u stratified by
    du = (1 - 1/ratio) / K, that sample is within t_p * du / (u_p - du) of p, i.e. at most that distance
    over D in angle from p's direction."""
    dome = 5.0

    def environment(points, view_dirs):
        beyond = points[:, 3] < 1.0 / dome  # R / |x| with R = 1
        return torch.where(beyond, 1e4, 0.0), (points[:, :3] + 1) / 2

    k, ratio = 256, 100.0
    cfg = VolumeRendererConfig(
        background="field", background_samples=k, background_far_ratio=ratio, num_samples=16, num_importance=0
    )
    o, d = rays_towards(
        [[0.0, 1.2, 0.0], [1.0, 1.0, 0.0], [0.0, -3.0, 3.0], [2.0, 0.0, 4.0]], origin=(0.5, 0.0, -3.0)
    )
    out = render(cfg, o, d, 1e3, background_fn=environment)
    b = (o * d).sum(-1)
    t_p = -b + (b**2 - (o * o).sum(-1) + dome**2).sqrt()
    p = o + d * t_p[:, None]
    _, far, hits = intersect_sphere(o, d, 1.0)
    t0 = torch.where(hits, far, torch.maximum(-b, o.norm(dim=-1) - 1.0))
    u_p, du = t0 / t_p, (1 - 1 / ratio) / k
    tol = 0.5 * (t_p * du / (u_p - du)) / dome + 1e-4
    assert (out.opacity < 1e-3).all()
    err = (out.rgb - (p / dome + 1) / 2).norm(dim=-1)
    assert (err <= tol).all(), (err, tol)
    assert ((out.rgb - (d + 1) / 2).norm(dim=-1) > 5 * tol).any()  # the dome is not at infinity


def test_constant_background_and_none():
    o, d = rays_towards([[0.0, 0.0, 0.0], [0.0, 0.9, 0.0]])
    colour = torch.tensor([1.0, 0.5, 0.25])
    cfg = VolumeRendererConfig(background="constant")
    out = render(cfg, o, d, 1e3, background_color=colour)
    assert torch.allclose(out.rgb[1], colour, atol=1e-4)
    assert torch.allclose(out.rgb[0], torch.tensor([0.2, 0.6, 0.9]), atol=1e-4)
    none = render(VolumeRendererConfig(), o, d, 1e3)
    assert torch.allclose(none.rgb, out.rgb - (1 - out.opacity)[:, None] * colour, atol=1e-6)
    per_ray = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.2, 0.3]])
    assert torch.allclose(render(cfg, o, d, 1e3, background_color=per_ray).rgb[1], per_ray[1], atol=1e-4)
    with pytest.raises(ValueError, match="background_color"):
        render(cfg, o, d, 1e3)


def test_inverted_sphere_coordinates():
    x = torch.tensor([[0.0, 0.0, 4.0], [3.0, 0.0, 0.0]])
    assert torch.allclose(
        inverted_sphere(x, 2.0), torch.tensor([[0.0, 0.0, 1.0, 0.5], [1.0, 0.0, 0.0, 2 / 3]])
    )


def test_config_checks_the_up_sampling_split():
    with pytest.raises(ValueError, match="multiple"):
        VolumeRenderer(VolumeRendererConfig(num_importance=30, up_sample_steps=4))


# ---------------------------------------------------------------------------------------------- gradients
def learnable_sphere(radius, colour):
    """A sphere SDF of learnable radius whose field computes its gradient by autograd (as SDFField does)."""

    def sdf_fn(x):
        return x.norm(dim=-1) - radius

    def field_fn(points, view_dirs):
        with torch.enable_grad():
            p = points if points.requires_grad else points.detach().requires_grad_(True)
            sdf = sdf_fn(p)
            (grad,) = torch.autograd.grad(sdf.sum(), p, create_graph=True)
        return FieldSamples(sdf=sdf, gradient=grad, rgb=colour.expand_as(points))

    return sdf_fn, field_fn


def tiny_background():
    from nsr.encodings import PositionalEncodingConfig
    from nsr.fields import BackgroundFieldConfig

    return BackgroundFieldConfig(
        encoding=PositionalEncodingConfig(num_frequencies=2), view_encoding=PositionalEncodingConfig(2),
        hidden_dim=16, num_layers=1, colour_hidden_dim=8,
    ).build()  # fmt: skip


def test_gradients_reach_the_sdf_the_variance_the_colour_and_the_background():
    from nsr.fields import SingleVariance, VarianceConfig
    from nsr.losses import eikonal_loss, rgb_l1_loss

    radius = torch.nn.Parameter(torch.tensor(0.45))
    colour = torch.nn.Parameter(torch.full((3,), 0.3))
    variance, background = SingleVariance(VarianceConfig()), tiny_background()
    sdf_fn, field_fn = learnable_sphere(radius, colour)
    cfg = VolumeRendererConfig(background="field", num_samples=16, num_importance=16, up_sample_steps=2,
                               background_samples=8)  # fmt: skip
    o, d = rays_towards(((torch.rand(64, 3) - 0.5) * 1.6).tolist())
    out = VolumeRenderer(cfg).render(
        o, d, sdf_fn, field_fn, variance.inv_s(), 0.5, background_fn=background, training=True
    )
    loss = rgb_l1_loss(out.rgb, torch.rand(64, 3)) + eikonal_loss(out.samples.gradients, out.samples.inside)
    loss.backward()
    for p in [radius, colour, *variance.parameters(), *background.parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_training_a_learnable_sphere_recovers_the_radius_and_sharpens():
    """From radius 0.4 and NeuS's initial inv_s = 20, fitting renders of the sphere of radius 0.5 (in front of
    a white background) moves the radius to 0.5 and raises inv_s: the loss falls tenfold in 40 steps."""
    from nsr.fields import SingleVariance, VarianceConfig
    from nsr.losses import rgb_l1_loss

    radius = torch.nn.Parameter(torch.tensor(0.4))
    variance = SingleVariance(VarianceConfig())
    colour, white = torch.tensor([0.2, 0.6, 0.9]), torch.ones(3)
    sdf_fn, field_fn = learnable_sphere(radius, colour)
    cfg = VolumeRendererConfig(background="constant", num_samples=24, num_importance=16, up_sample_steps=2)
    renderer = VolumeRenderer(cfg)
    gen = torch.Generator().manual_seed(3)
    o, d = rays_towards(((torch.rand(96, 3, generator=gen) - 0.5) * 1.6).tolist())
    with torch.no_grad():
        target = render(cfg, o, d, 200.0, background_color=white).rgb
    opt = torch.optim.Adam([radius, *variance.parameters()], lr=1e-2)
    losses = []
    for _ in range(40):
        out = renderer.render(o, d, sdf_fn, field_fn, variance.inv_s(), background_color=white, training=True)
        loss = rgb_l1_loss(out.rgb, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.1 * sum(losses[:5])
    assert abs(radius.item() - 0.5) < 0.02
    assert variance.inv_s().item() > 100


def test_background_field_learns_an_environment():
    from nsr.losses import rgb_l1_loss

    background = tiny_background()
    cfg = VolumeRendererConfig(background="field", num_samples=8, num_importance=0, background_samples=8)
    renderer = VolumeRenderer(cfg)
    o, d = rays_towards(((torch.rand(128, 3) - 0.5) * 8.0).tolist())
    target = (d + 1) / 2
    opt = torch.optim.Adam(background.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        out = renderer.render(o, d, sphere_sdf, sphere_field(), torch.tensor(1e3), background_fn=background,
                              training=True)  # fmt: skip
        loss = rgb_l1_loss(out.rgb, target, out.opacity < 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.3 * sum(losses[:5])


def test_gradients_reach_the_camera_rays():
    o, d = rays_towards([[0.0, 0.1, 0.0]])
    o.requires_grad_(True)
    out = render(VolumeRendererConfig(num_samples=32, num_importance=32, up_sample_steps=2), o, d, 100.0)
    out.depth.sum().backward()
    # Moving the camera along the ray moves the depth by the same amount (opposite sign).
    assert (o.grad @ d[0]).item() == pytest.approx(-1.0, abs=0.02)


# ------------------------------------------------------------------------------------------------- chunks
@pytest.mark.parametrize("background", ["none", "field"])
def test_chunked_rendering_matches_one_batch(background):
    cfg = VolumeRendererConfig(num_samples=16, num_importance=16, up_sample_steps=2, background=background,
                               background_samples=8)  # fmt: skip
    gen = torch.Generator().manual_seed(4)
    o, d = rays_towards(((torch.rand(50, 3, generator=gen) - 0.5) * 1.8).tolist())
    grid = OccupancyGridConfig(resolution=12).build(1.0)
    grid.update(sphere_sdf, torch.tensor(100.0))
    bg = (lambda p, v: (p[:, 3] * 3, (p[:, :3] + 1) / 2)) if background == "field" else None
    renderer = VolumeRenderer(cfg)
    args = (o, d, sphere_sdf, sphere_field(), torch.tensor(100.0), 0.7)
    whole = renderer.render(*args, occupancy=grid, background_fn=bg)
    seen = []
    chunked = renderer.render_chunked(*args, occupancy=grid, background_fn=bg, chunk_size=7,
                                      progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert seen[-1] == (50, 50) and len(seen) == 8
    assert chunked.samples is None
    for name in ("rgb", "opacity", "depth", "normals"):
        assert torch.allclose(getattr(whole, name), getattr(chunked, name), atol=1e-6), name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_render_and_backward_do_not_synchronise_on_gpu():
    """No `.item()`, `.nonzero()` or boolean indexing in the training path (CUDA sync debug mode raises)."""
    dev = torch.device("cuda")
    radius = torch.nn.Parameter(torch.tensor(0.45, device=dev))

    def sdf_fn(x):
        return x.norm(dim=-1) - radius

    def field_fn(points, view_dirs):
        return FieldSamples(
            sdf=sdf_fn(points), gradient=F.normalize(points, dim=-1), rgb=torch.sigmoid(points)
        )

    cfg = VolumeRendererConfig(background="field")
    grid = cfg.occupancy.build(1.0).to(dev)
    o, d = (t.to(dev) for t in rays_towards(((torch.rand(512, 3) - 0.5) * 1.6).tolist()))
    s = torch.tensor(100.0, device=dev)
    renderer = VolumeRenderer(cfg)
    renderer.render(
        o, d, sdf_fn, field_fn, s, occupancy=grid, background_fn=lambda p, v: (p[:, 3], v), training=True
    )
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = renderer.render(o, d, sdf_fn, field_fn, s, 0.5, occupancy=grid,
                              background_fn=lambda p, v: (p[:, 3], v.abs()), training=True)  # fmt: skip
        (out.rgb.sum() + out.samples.weights.sum()).backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.parametrize("gradient", ["analytic", "finite_difference"])
def test_renders_the_neural_fields_in_training_and_in_chunks(gradient):
    """The model's composition with SDFField + AppearanceField: training renders keep the graph to the
    weights (eikonal and curvature included); chunked renders run under no_grad and still get normals."""
    from nsr.encodings import PositionalEncodingConfig
    from nsr.fields import AppearanceFieldConfig, SDFFieldConfig
    from nsr.losses import curvature_loss, eikonal_loss

    sdf_field = SDFFieldConfig(
        encoding=PositionalEncodingConfig(2), hidden_dim=32, num_layers=2, skip_layers=(), feature_dim=4,
        gradient=gradient, finite_difference_taps=6,
    ).build()  # fmt: skip
    appearance = AppearanceFieldConfig(
        hidden_dim=16, num_layers=2, view_encoding=PositionalEncodingConfig(2)
    ).build(4)

    def field_fn(points, view_dirs):
        out = sdf_field.with_gradient(points, create_graph=torch.is_grad_enabled(), laplacian=True)
        rgb = appearance(points, out.gradient, view_dirs, out.features)
        return FieldSamples(sdf=out.sdf, gradient=out.gradient, rgb=rgb, laplacian=out.laplacian)

    renderer = VolumeRenderer(VolumeRendererConfig(num_samples=16, num_importance=16, up_sample_steps=2))
    o, d = rays_towards(((torch.rand(24, 3) - 0.5) * 1.6).tolist())
    s = torch.tensor(30.0)
    out = renderer.render(o, d, sdf_field.sdf, field_fn, s, 0.3, training=True)
    smp = out.samples
    assert smp.laplacian.shape == smp.sdf.shape == (24, 32)
    loss = out.rgb.sum() + eikonal_loss(smp.gradients, smp.inside) + curvature_loss(smp.laplacian, smp.inside)
    loss.backward()
    assert all(p.grad is not None for p in sdf_field.parameters())
    image = renderer.render_chunked(o, d, sdf_field.sdf, field_fn, s, 0.3, chunk_size=10)
    assert not image.rgb.requires_grad
    assert torch.allclose(image.normals.norm(dim=-1), torch.ones(24), atol=1e-5)
    assert torch.allclose(image.rgb, out.rgb.detach(), atol=0.1)  # jittered vs deterministic samples


def test_configs_round_trip_through_plain_data():
    from nsr.config.io import from_dict, to_dict
    from nsr.fields import BackgroundFieldConfig, VarianceConfig

    for config in (VolumeRendererConfig(background="field"), BackgroundFieldConfig(), VarianceConfig()):
        assert from_dict(type(config), to_dict(config)) == config
