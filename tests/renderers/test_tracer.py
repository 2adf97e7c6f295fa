import math

import pytest
import torch

from conftest import needs_triton, under_triton_interpreter
from nsr.renderers import SphereTracer, SphereTracerConfig, differentiable_surface_points, intersect_sphere


def sphere(radius=0.5, centre=(0.0, 0.0, 0.0)):
    c = torch.tensor(centre)
    return lambda x: (x - c).norm(dim=-1) - radius


def rays_towards(targets, origin=(0.0, 0.0, -3.0)):
    o = torch.tensor(origin).expand(len(targets), 3).clone()
    d = torch.nn.functional.normalize(torch.tensor(targets) - o, dim=-1)
    return o, d


def test_intersect_bounding_sphere():
    o, d = rays_towards([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    near, far, hits = intersect_sphere(o, d, 1.0)
    assert hits.tolist() == [True, False]
    assert near[0].item() == pytest.approx(2.0) and far[0].item() == pytest.approx(4.0)


def test_hits_analytic_sphere_at_the_right_depth():
    tracer = SphereTracer(SphereTracerConfig())
    ys = torch.linspace(-0.7, 0.7, 29)
    o, d = rays_towards([[0.0, float(y), 0.0] for y in ys])
    result = tracer.trace(sphere(0.5), o, d)
    # Exact intersection of each ray with the sphere of radius 0.5.
    b = (o * d).sum(-1)
    disc = b**2 - ((o * o).sum(-1) - 0.25)
    expected_hit = disc > 0
    assert torch.equal(result.hit, expected_hit)
    exact = -b - disc.clamp_min(0).sqrt()
    assert torch.allclose(result.depth[expected_hit], exact[expected_hit], atol=1e-3)


def test_grazing_and_hole_rays_converge_by_sampling_and_secant():
    # A torus seen through its hole: rays through the hole miss, rays at the tube hit.
    def torus(x):
        q = torch.stack([torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2) - 0.5, x[:, 2]], -1)
        return q.norm(dim=-1) - 0.15

    tracer = SphereTracer(SphereTracerConfig(sphere_tracing_iters=3))  # force the sampler
    o, d = rays_towards([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.62, 0.0, 0.0], [0.15, 0.1, 0.0]])
    r = tracer.trace(torus, o, d)
    assert r.hit.tolist() == [False, True, True, False]
    points = o + d * r.depth[:, None]
    assert torus(points[r.hit]).abs().max() < 1e-4


def test_min_sdf_points_for_the_mask_loss():
    tracer = SphereTracer(SphereTracerConfig())
    o, d = rays_towards([[0.0, 0.7, 0.0], [0.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    mask = torch.tensor([True, False, False])
    r = tracer.trace(sphere(0.5), o, d, mask)
    # Missed object ray: the closest approach to the sphere (distance 0.7 * 3 / sqrt(9 + 0.49) from the centre).
    closest = 0.7 * 3 / math.sqrt(9 + 0.49)
    assert r.min_points[0].norm().item() == pytest.approx(closest, abs=0.02)
    # Hit but background: the search runs beyond the hit point, into the object.
    assert r.min_points[1].norm().item() < 0.1
    # Misses the bounding sphere: the closest point to the origin.
    assert torch.allclose(r.min_points[2], o[2] + d[2] * (-(o[2] * d[2]).sum()), atol=1e-6)


@pytest.mark.parametrize("mode", ["compact", "static"])
@pytest.mark.parametrize("iters", [10, 2])  # 2: the rays go through the sampler
def test_mask_search_depth_keeps_the_mask_loss_near_the_visible_surface(mode, iters):
    """With `mask_search_depth` the minimal-SDF point of a hit-but-background ray lies at most that far
    past the hit point (the deepest SDF there), not at the centre of the object."""
    cfg = SphereTracerConfig(mode=mode, mask_search_depth=0.1, sphere_tracing_iters=iters, mask_samples=400)
    o, d = rays_towards([[0.0, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.7, 0.0]])
    mask = torch.tensor([False, False, False])
    r = SphereTracer(cfg).trace(sphere(0.5), o, d, mask)
    assert r.hit.tolist() == [True, True, False]
    b = (o * d).sum(-1)
    exact = -b - (b**2 - (o * o).sum(-1) + 0.25).clamp_min(0).sqrt()  # the hit of the sphere of radius 0.5
    beyond = ((r.min_points - o) * d).sum(-1) - exact
    # (through the sampler the reach counts from the first negative sample, one sample step past the hit)
    assert (beyond[:2] >= -1e-3).all() and (beyond[:2] <= 0.1 + 0.03).all()
    # The deepest point within reach is (nearly) the farthest one: SDF about -0.1 on the central ray.
    assert sphere(0.5)(r.min_points[:1]).item() == pytest.approx(-0.1, abs=0.01)
    # A ray that misses keeps the search over the whole chord (closest approach to the sphere).
    closest = 0.7 * 3 / math.sqrt(9 + 0.49)
    assert r.min_points[2].norm().item() == pytest.approx(closest, abs=0.02)


def test_implicit_differentiation_matches_finite_differences():
    """d(surface point)/d(sphere radius and centre) equals the finite-difference derivative."""
    radius = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    centre = torch.tensor([0.05, -0.02, 0.1], dtype=torch.float64, requires_grad=True)

    def sdf_fn(x):
        return (x - centre).norm(dim=-1) - radius

    o = torch.tensor([[0.0, 0.0, -3.0], [0.1, 0.2, -3.0]], dtype=torch.float64)
    d = torch.nn.functional.normalize(
        torch.tensor([[0.0, 0.05, 1.0], [0.02, -0.1, 1.0]], dtype=torch.float64), dim=-1
    )

    def exact_points(r, c):
        oc = o - c
        b = (oc * d).sum(-1)
        t = -b - torch.sqrt(b**2 - (oc * oc).sum(-1) + r**2)
        return o + d * t[:, None]

    with torch.no_grad():
        t0 = (exact_points(radius, centre) - o).norm(dim=-1)
    points = differentiable_surface_points(sdf_fn, o, d, t0)
    assert torch.allclose(points, exact_points(radius, centre), atol=1e-10)
    weights = torch.tensor([[0.3, -1.0, 0.7], [1.1, 0.4, -0.2]], dtype=torch.float64)
    (points * weights).sum().backward()
    eps = 1e-6
    with torch.no_grad():
        fd_r = ((exact_points(radius + eps, centre) - exact_points(radius - eps, centre)) * weights).sum() / (
            2 * eps
        )
        assert radius.grad.item() == pytest.approx(fd_r.item(), rel=1e-5)
        for axis in range(3):
            e = torch.zeros(3, dtype=torch.float64)
            e[axis] = eps
            fd = ((exact_points(radius, centre + e) - exact_points(radius, centre - e)) * weights).sum() / (
                2 * eps
            )
            assert centre.grad[axis].item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-8)


def test_implicit_differentiation_reaches_the_camera():
    radius = 0.5
    o = torch.tensor([[0.0, 0.1, -3.0]], dtype=torch.float64, requires_grad=True)
    d = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64), dim=-1)

    def sdf_fn(x):
        return x.norm(dim=-1) - radius

    with torch.no_grad():
        t0 = torch.tensor([3.0 - math.sqrt(radius**2 - 0.01)], dtype=torch.float64)
    points = differentiable_surface_points(sdf_fn, o, d, t0)
    points[0, 2].backward()
    # z of the hit point = -sqrt(r^2 - y^2): dz/dy = y / sqrt(r^2 - y^2)
    assert o.grad[0, 1].item() == pytest.approx(0.1 / math.sqrt(radius**2 - 0.01), rel=1e-6)


def _torus(x):
    q = torch.stack([torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2) - 0.5, x[:, 2]], -1)
    return q.norm(dim=-1) - 0.15


@pytest.mark.parametrize("iters", [3, 10])
def test_static_mode_matches_compact_mode(iters):
    """The fixed-shape (CUDA-graph-able) trace gives the compact trace's depths, hits and mask points."""
    gen = torch.Generator().manual_seed(0)
    targets = (torch.rand(300, 3, generator=gen) - 0.5) * 1.6
    o, d = rays_towards(targets.tolist(), origin=(0.2, -0.1, -2.5))
    mask = torch.rand(300, generator=gen) > 0.3
    results = {}
    for mode in ("compact", "static"):
        tracer = SphereTracer(SphereTracerConfig(mode=mode, sphere_tracing_iters=iters, mask_samples=400))
        results[mode] = (tracer.trace(_torus, o, d), tracer.trace(_torus, o, d, mask))
    for a, b in zip(results["compact"], results["static"]):
        assert torch.equal(a.hit, b.hit)
        assert torch.allclose(a.depth[a.hit], b.depth[b.hit], atol=1e-6)
    # Mask points come from a random search; with many strata both find the same minimal SDF.
    ca, sa = results["compact"][1], results["static"][1]
    need = ~(ca.hit & mask)
    assert need.sum() > 20
    assert torch.allclose(_torus(ca.min_points[need]), _torus(sa.min_points[need]), atol=0.01)


def trace_counted(tracer, sdf_fn, o, d, mask, seed):
    """The trace (random depths drawn after `torch.manual_seed(seed)`) and the sizes of its SDF calls."""
    sizes = []

    def sdf(x):
        sizes.append(len(x))
        return sdf_fn(x)

    torch.manual_seed(seed)
    return tracer.trace(sdf, o, d, mask), sizes


def trace_switched(config, switch, sdf_fn, o, d, mask, seed):
    """`trace_counted` with the tracer attribute `switch` on, then off: the two results and the sizes of
    each trace's SDF calls."""
    results, sizes = [], []
    for on in (True, False):
        tracer = SphereTracer(config)
        setattr(tracer, switch, on)
        result, calls = trace_counted(tracer, sdf_fn, o, d, mask, seed)
        results.append(result)
        sizes.append(calls)
    return results, sizes


@pytest.mark.parametrize("iters", [2, 10])
def test_static_dense_searches_in_one_call_match_two_calls(iters):
    """The static trace samples each ray for the one dense search it needs (the sampler's or the mask
    loss's) and evaluates the SDF once: bit for bit what the two searches one after the other give, with
    the same random depths, and with half their SDF queries."""
    gen = torch.Generator().manual_seed(2)
    targets = (torch.rand(300, 3, generator=gen) - 0.5) * 1.6
    o, d = rays_towards(targets.tolist(), origin=(0.2, -0.1, -2.5))
    mask = torch.rand(300, generator=gen) > 0.3
    config = SphereTracerConfig(mode="static", sphere_tracing_iters=iters, num_samples=64, mask_samples=64)
    (merged, separate), sizes = trace_switched(config, "merge_dense_searches", _torus, o, d, mask, seed=7)
    queries = [sum(calls) for calls in sizes]
    assert torch.equal(merged.hit, separate.hit)
    assert torch.equal(merged.depth, separate.depth)
    assert torch.equal(merged.min_points, separate.min_points)
    assert queries[1] - queries[0] == 300 * 64
    # both searches were needed by some rays: unfinished ones (few iterations) and mask-loss ones
    assert (~(merged.hit & mask)).sum() > 20


@pytest.mark.parametrize("line_steps", [1, 3])
def test_static_back_off_in_one_batch_matches_the_sequential_back_off(line_steps):
    """An SDF that overestimates distances (1.3x a torus's) makes sphere-tracing steps land inside: the
    static trace's back-off, its halvings evaluated in one batch, ends where the compact trace's sequential
    back-off does."""

    def steep(x):
        return 1.3 * _torus(x)

    gen = torch.Generator().manual_seed(1)
    targets = (torch.rand(400, 3, generator=gen) - 0.5) * 1.4
    o, d = rays_towards(targets.tolist(), origin=(0.3, 0.2, -2.5))
    results = {}
    for mode in ("compact", "static"):
        tracer = SphereTracer(SphereTracerConfig(mode=mode, line_step_iters=line_steps, num_samples=16))
        results[mode] = tracer.trace(steep, o, d)
    compact, static = results["compact"], results["static"]
    assert static.hit.sum() > 100 and torch.equal(compact.hit, static.hit)
    assert torch.allclose(compact.depth[compact.hit], static.depth[static.hit], atol=1e-6)
    # the steps did overshoot: without any back-off the fronts end elsewhere
    plain = SphereTracer(SphereTracerConfig(mode="static", line_step_iters=0, num_samples=16)).trace(
        steep, o, d
    )
    assert not torch.equal(plain.hit, static.hit)


@pytest.mark.parametrize("line_steps", [0, 3])
def test_static_steps_take_their_sdf_values_from_the_back_off_batch(line_steps):
    """Each static sphere-tracing step reads the SDF at its new depths from the back-off's batch (which
    now also holds the last halving) instead of calling the SDF again: bit for bit the same trace, with the
    same SDF queries in one call a step instead of two."""

    def steep(x):  # steps land inside, so the back-off chooses among its halvings
        return (1.3 if line_steps else 1.0) * _torus(x)

    gen = torch.Generator().manual_seed(3)
    targets = (torch.rand(400, 3, generator=gen) - 0.5) * 1.4
    o, d = rays_towards(targets.tolist(), origin=(0.3, 0.2, -2.5))
    mask = torch.rand(400, generator=gen) > 0.3
    config = SphereTracerConfig(mode="static", line_step_iters=line_steps, num_samples=32, mask_samples=32)
    (reused, called), sizes = trace_switched(config, "values_from_back_off", steep, o, d, mask, seed=5)
    calls, queries = [len(c) for c in sizes], [sum(c) for c in sizes]
    assert reused.hit.sum() > 100
    assert torch.equal(reused.hit, called.hit) and torch.equal(reused.depth, called.depth)
    assert torch.equal(reused.min_points, called.min_points)
    # without halvings the step's one call was already the SDF at its new depths
    assert calls[1] - calls[0] == (config.sphere_tracing_iters if line_steps else 0)
    assert queries[0] == queries[1]


def fused_steps_parity(device: str, n: int = 300) -> None:
    """The trace with its sphere-tracing and secant steps as `nsr.accel.trace_triton`'s kernels against PyTorch's
    operations, on the torus with a mask, two back-off depths: the same depths, hits and mask points, bit for bit."""
    gen = torch.Generator().manual_seed(0)
    targets = (torch.rand(n, 3, generator=gen) - 0.5) * 1.6
    o, d = rays_towards(targets.tolist(), origin=(0.2, -0.1, -2.5))
    mask = torch.rand(n, generator=gen) > 0.3
    o, d, mask = o.to(device), d.to(device), mask.to(device)
    for mode, line_steps in (
        ("static", 1),
        ("static", 3),
        ("compact", 3),
    ):  # compact: the secant's kernel only
        results = []
        for fused in ("on", "off"):
            config = SphereTracerConfig(mode=mode, line_step_iters=line_steps, fused_steps=fused)
            tracer = SphereTracer(config)
            torch.manual_seed(1)
            results.append(tracer.trace(_torus, o, d, mask))
            assert tracer.fused_unavailable is None
        (a, b) = results
        assert a.hit.sum() > 50
        assert torch.equal(a.hit, b.hit) and torch.equal(a.depth, b.depth), (mode, line_steps)
        assert torch.equal(a.min_points, b.min_points)


@needs_triton
def test_fused_steps_match_pytorchs_under_the_triton_interpreter():
    under_triton_interpreter(
        __file__, "from test_tracer import fused_steps_parity\nfused_steps_parity('cpu')\n"
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_steps_match_pytorchs_on_the_gpu():
    pytest.importorskip("triton")
    fused_steps_parity("cuda", n=5000)


def test_fused_steps_are_taken_where_they_apply_and_a_failure_leaves_pytorchs(monkeypatch, caplog):
    """`auto` (the default) uses the kernels on CUDA only; where they fail, the trace runs PyTorch's operations
    (the same result) and says so once."""
    pytest.importorskip("triton")
    from nsr.accel import trace_triton

    o, d = rays_towards([[0.0, 0.0, 0.0], [0.3, 0.1, 0.0]])
    assert not SphereTracer(SphereTracerConfig(mode="static", fused_steps="auto"))._fused_steps(o)
    assert SphereTracerConfig().fused_steps == "auto"
    with monkeypatch.context() as cuda:
        cuda.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
        assert SphereTracer(SphereTracerConfig(mode="static"))._fused_steps(o)
        assert not SphereTracer(SphereTracerConfig(mode="static", fused_steps="off"))._fused_steps(o)
    tracer = SphereTracer(SphereTracerConfig(mode="static", fused_steps="on"))
    assert tracer._fused_steps(o)

    def fail(*args, **kwargs):
        raise RuntimeError("no kernel image for this device")

    monkeypatch.setattr(trace_triton, "advance", fail)
    with caplog.at_level("WARNING"):
        result = tracer.trace(_torus, o, d)
        tracer.trace(_torus, o, d)
    expected = SphereTracer(SphereTracerConfig(mode="static")).trace(_torus, o, d)
    assert torch.equal(result.depth, expected.depth) and torch.equal(result.hit, expected.hit)
    assert "no kernel image" in tracer.fused_unavailable and not tracer._fused_steps(o)
    assert sum("fused step kernels failed" in r.message for r in caplog.records) == 1


def test_graphed_trace_refuses_compact_mode():
    from nsr.renderers import GraphedTrace

    tracer = SphereTracer(SphereTracerConfig(mode="compact"))
    o, d = rays_towards([[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="static"):
        GraphedTrace(tracer, _torus, o, d, torch.tensor([True]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graphed_trace_matches_eager_trace_on_gpu():
    from nsr.renderers import GraphedTrace

    dev = torch.device("cuda")
    centre = torch.zeros(3, device=dev)

    def moving_sphere(x):
        return (x - centre).norm(dim=-1) - 0.5

    tracer = SphereTracer(SphereTracerConfig(mode="static", mask_samples=1))
    gen = torch.Generator().manual_seed(0)
    targets = ((torch.rand(256, 3, generator=gen) - 0.5) * 1.6).tolist()
    o, d = (t.to(dev) for t in rays_towards(targets))
    mask = torch.ones(256, dtype=torch.bool, device=dev)
    graphed = GraphedTrace(tracer, moving_sphere, o, d, mask)
    for shift in (0.0, 0.1):
        centre.fill_(shift)  # state read from its storage at every replay
        eager = tracer.trace(moving_sphere, o, d, mask)
        replay = graphed(o, d, mask)
        assert torch.equal(eager.hit, replay.hit)
        assert torch.allclose(eager.depth[eager.hit], replay.depth[replay.hit], atol=1e-5)
