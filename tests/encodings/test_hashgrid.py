"""Hash grid encoding: known answers of the torch reference, its derivatives, and the fused kernel's parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import RegularGridInterpolator

from conftest import needs_triton, under_triton_interpreter
from nsr.config import TrainConfig, load_yaml, save_yaml
from nsr.encodings import ENCODING_CONFIGS, HashGrid, HashGridConfig, PositionalEncodingConfig
from nsr.encodings.hashgrid import level_resolutions
from nsr.fields import SDFFieldConfig
from nsr.models import IDRLossConfig, IDRModelConfig, RayBatch
from nsr.renderers import SphereTracerConfig


def grid(in_dim=3, **kw) -> HashGrid:
    kw.setdefault("backend", "torch")
    return HashGridConfig(**kw).build(in_dim)


def vertex_points(r: int, d: int, bound: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """All integer vertices (K, D) of a level of resolution r and their input coordinates (K, D)."""
    axes = torch.meshgrid(*[torch.arange(r + 1)] * d, indexing="ij")
    c = torch.stack([a.reshape(-1) for a in axes], -1)
    return c, (c.double() / r * 2 - 1) * bound


def test_resolutions_follow_the_growth_factor():
    # The original's examples (original_system.md 4.5), finest level exact despite rounding.
    assert level_resolutions(HashGridConfig(num_levels=6, base_resolution=8, finest_resolution=512)) == [
        8, 18, 42, 97, 222, 512,
    ]  # fmt: skip
    assert level_resolutions(HashGridConfig(num_levels=6, base_resolution=16, finest_resolution=512)) == [
        16, 32, 64, 128, 256, 512,
    ]  # fmt: skip
    res = level_resolutions(HashGridConfig(num_levels=16, base_resolution=16, finest_resolution=2048))
    b = math.exp((math.log(2048) - math.log(16)) / 15)
    assert res[0] == 16 and res[-1] == 2048
    assert all(r == math.floor(16 * b**i + 1e-6) for i, r in enumerate(res))
    g = grid(num_levels=4, features_per_level=3, base_resolution=4, finest_resolution=32, log2_table_size=10)
    assert g.resolutions == [4, 8, 16, 32] and g.out_dim == 3 + 4 * 3
    assert g.dense_levels == [True, True, False, False]  # 125, 729 <= 1024 < 17^3, 33^3
    assert g.level_offsets == [0, 125, 125 + 729, 125 + 729 + 1024, 125 + 729 + 2048]
    assert grid(include_input=False, num_levels=2, base_resolution=2, finest_resolution=4).out_dim == 4
    with pytest.raises(ValueError, match="finest_resolution"):
        grid(base_resolution=64, finest_resolution=32)


@pytest.mark.parametrize("d", [2, 3])
def test_dense_level_is_multilinear_interpolation_of_its_table(d):
    r, f = 5, 2
    g = grid(
        d, num_levels=1, features_per_level=f, base_resolution=r, finest_resolution=r, log2_table_size=10
    )
    g.double()
    values = torch.randn(*[r + 1] * d, f, dtype=torch.float64)
    with torch.no_grad():  # row of vertex c = c0 + c1 (r+1) + c2 (r+1)^2: axis 0 varies fastest
        g.table.copy_(values.permute(*reversed(range(d)), d).reshape(-1, f))
    x = torch.rand(500, d, dtype=torch.float64) * 2 - 1
    x[:10] *= 1e-3  # around 0, where truncation and floor differ in the original's unmapped lookup
    out = g.level_features(x)[:, 0]
    interp = RegularGridInterpolator([np.arange(r + 1)] * d, values.numpy(), method="linear")
    expected = torch.from_numpy(interp(((x + 1) / 2 * r).numpy()))
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    assert torch.equal(g(x)[:, :d], x)  # raw input first


def rows_at_vertices(g: HashGrid, level: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(vertices, table row of each vertex), read through the lookup itself (table[row, 0] = row)."""
    g.double()
    with torch.no_grad():
        g.table[:, 0] = torch.arange(g.table.shape[0], dtype=torch.float64)
    c, x = vertex_points(g.resolutions[level], g.in_dim)
    rows = g.level_features(x)[:, level, 0].round().long() - g.level_offsets[level]
    return c, rows


def test_dense_levels_never_collide_and_hashed_levels_use_the_instant_ngp_hash():
    g = grid(num_levels=2, base_resolution=7, finest_resolution=12, log2_table_size=9)
    assert g.dense_levels == [True, False]  # 8^3 = 512 fits 2^9; 13^3 does not
    c, rows = rows_at_vertices(g, 0)
    assert torch.equal(rows.sort().values, torch.arange(512))  # a bijection: no collisions
    assert torch.equal(rows, c[:, 0] + 8 * c[:, 1] + 64 * c[:, 2])
    c, rows = rows_at_vertices(g, 1)
    expected = [
        (((a * 1) & 0xFFFFFFFF) ^ ((b * 2654435761) & 0xFFFFFFFF) ^ ((e * 805459861) & 0xFFFFFFFF)) % 512
        for a, b, e in c.tolist()
    ]  # instant-ngp: uint32 products, XOR, modulo the table size
    assert rows.tolist() == expected
    assert rows.min() >= 0 and rows.max() < 512 and rows.unique().numel() < c.shape[0]


def test_smoothstep_interpolation():
    g = grid(1, num_levels=1, features_per_level=1, base_resolution=1, finest_resolution=1)
    gs = grid(1, num_levels=1, features_per_level=1, base_resolution=1, finest_resolution=1)
    gs.config.interpolation = "smoothstep"
    with torch.no_grad():
        g.table.copy_(torch.tensor([[0.0], [1.0]]))
        gs.table.copy_(g.table)
    u = torch.linspace(0, 1, 11)[:, None]
    x = (2 * u - 1).requires_grad_(True)
    torch.testing.assert_close(g.level_features(x)[:, 0], u)
    smooth = gs.level_features(x)[:, 0, 0]
    torch.testing.assert_close(smooth, (3 * u**2 - 2 * u**3)[:, 0])
    (slope,) = torch.autograd.grad(smooth.sum(), x)
    assert slope[0].abs() < 1e-6 and slope[-1].abs() < 1e-6  # flat at the vertices
    torch.testing.assert_close(slope[5], torch.tensor([0.75]))  # d/dx (3u^2 - 2u^3) at u = 1/2, du/dx = 1/2


def test_coarse_to_fine_masks_levels_and_shrinks_the_step():
    g = grid(num_levels=4, base_resolution=4, finest_resolution=32, start_levels=2, unlock_every=0.1)
    x = torch.rand(64, 3) * 2 - 1
    features = g.level_features(x)
    assert features[:, 2:].abs().max() == 0 and features[:, :2].abs().max() > 0
    assert g.finite_difference_step() == pytest.approx(1 / 8)  # half a cell of the finest active level
    features.sum().backward()
    assert g.table.grad[g.level_offsets[2] :].abs().max() == 0  # locked levels do not train
    g.set_progress(0.15)
    assert g.active_levels == 3 and g.level_features(x)[:, 3].abs().max() == 0
    g.set_progress(1.0)
    assert g.active_levels == 4 and g.level_features(x)[:, 3].abs().max() > 0
    assert g.finite_difference_step() == pytest.approx(1 / 32)
    assert grid(num_levels=4, start_levels=0).active_levels == 4


def test_outside_the_domain_features_are_those_of_the_nearest_face():
    g = grid(num_levels=3, base_resolution=4, finest_resolution=16, bound=0.5, init_scale=1.0)
    x = torch.tensor([[0.9, 0.1, -0.2], [-3.0, 0.2, 0.45], [0.1, 0.1, 0.1]], requires_grad=True)
    clamped = x.detach().clamp(-0.5, 0.5)
    torch.testing.assert_close(g.level_features(x), g.level_features(clamped))
    out = g(x)
    assert torch.equal(out[:, :3], x)
    (grad,) = torch.autograd.grad(g.level_features(x).sum(), x)
    assert grad[0, 0] == 0 and grad[1, 0] == 0  # no grid gradient across the face
    assert grad[0, 1] != 0 and grad[2].abs().min() > 0


def away_from_cell_faces(g: HashGrid, n: int, margin: float = 0.1) -> torch.Tensor:
    x = torch.rand(20 * n, g.in_dim, dtype=torch.float64) * 1.8 - 0.9
    keep = torch.ones(x.shape[0], dtype=torch.bool)
    for r in g.resolutions:
        frac = ((x + 1) / 2 * r) % 1
        keep &= ((frac > margin) & (frac < 1 - margin)).all(-1)
    return x[keep][:n]


@pytest.mark.parametrize("interpolation", ["linear", "smoothstep"])
def test_gradcheck_and_gradgradcheck_in_float64(interpolation):
    g = grid(
        num_levels=2,
        features_per_level=2,
        base_resolution=2,
        finest_resolution=6,
        log2_table_size=6,  # level 0 dense (27 rows), level 1 hashed (7^3 > 64)
        interpolation=interpolation,
        init_scale=1.0,
    ).double()
    assert g.dense_levels == [True, False]
    x = away_from_cell_faces(g, 4).requires_grad_(True)

    def lookup(x, t):
        from nsr.encodings.hashgrid import hashgrid_torch

        out = hashgrid_torch(x, t, g._res, g._offsets, g._dense, 63, 1.0, interpolation == "smoothstep")
        return torch.cat([x, out.flatten(1)], -1)

    t = g.table.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lookup, (x, t))
    assert torch.autograd.gradgradcheck(lookup, (x, t))
    # The eikonal term trains the table: d/dtable of |d out/dx|^2 is non-zero.
    (gx,) = torch.autograd.grad(g(x)[:, 3:].sum(), x, create_graph=True)
    gx.pow(2).sum().backward()
    assert g.table.grad.abs().sum() > 0


def test_total_variation_known_answers():
    r = 4
    g = grid(num_levels=1, features_per_level=1, base_resolution=r, finest_resolution=r, log2_table_size=8)
    c, _ = vertex_points(r, 3)
    with torch.no_grad():  # a ramp along axis 0 with slope 0.5 per vertex
        g.table.zero_()
        g.table[c[:, 0] + 5 * c[:, 1] + 25 * c[:, 2], 0] = 0.5 * c[:, 0].float()
    assert g.total_variation().item() == pytest.approx(0.25 / 3)  # one axis of three varies
    with torch.no_grad():
        g.table.fill_(2.0)
    assert g.total_variation().item() == 0
    hashed = grid(num_levels=2, base_resolution=8, finest_resolution=16, log2_table_size=8, init_scale=1.0)
    assert hashed.dense_levels == [False, False]
    tv = hashed.total_variation()
    assert 0.5 < tv.item() < 1.5  # independent uniform(-1, 1) pairs: E|a - b|^2 = 2/3 per feature, F = 2
    tv.backward()
    assert hashed.table.grad.abs().sum() > 0


def test_backend_choice_and_clear_errors():
    from nsr.accel.probe import has_cuda, has_tcnn, has_triton

    auto = grid(backend="auto", num_levels=2, base_resolution=2, finest_resolution=4)
    if not has_cuda():
        assert auto.backend == "torch"
    if not has_triton():
        with pytest.raises(ValueError, match="Triton"):
            grid(backend="fused")
    if not has_tcnn():
        with pytest.raises(ValueError, match="tinycudann"):
            grid(backend="tcnn")
    # An SDF field with the analytic eikonal gradient refuses the first-order-only kernel...
    g = grid(num_levels=2, base_resolution=2, finest_resolution=4)
    g.backend, g._backend_requested = "fused", "fused"
    with pytest.raises(ValueError, match="finite_difference"):
        g.require_double_backward()
    # ... and `auto` falls back to the reference instead.
    g._backend_requested = "auto"
    g.require_double_backward()
    assert g.backend == "torch"


def test_registered_and_round_trips_through_yaml(tmp_path):
    assert ENCODING_CONFIGS["hashgrid"] is HashGridConfig
    config = TrainConfig()
    config.model.sdf.encoding = HashGridConfig(num_levels=8, interpolation="smoothstep", start_levels=4)
    config.model.sdf.gradient = "finite_difference"
    config.model.sdf.finite_difference_taps = 6
    config.model.loss.tv_weight = 0.1
    save_yaml(config, tmp_path / "config.yaml", "train")
    assert load_yaml(TrainConfig, tmp_path / "config.yaml", "train") == config


# -- the SDF field's finite-difference gradient --------------------------------------------------


def sdf_config(encoding, **kw) -> SDFFieldConfig:
    return SDFFieldConfig(
        encoding=encoding, hidden_dim=48, num_layers=3, skip_layers=(2,), feature_dim=4, init_radius=0.5, **kw
    )


@pytest.mark.parametrize("taps", [4, 6])
def test_finite_difference_gradient_matches_autograd_on_a_smooth_field(taps):
    analytic = sdf_config(PositionalEncodingConfig(num_frequencies=3)).build().double()
    fd_config = sdf_config(
        PositionalEncodingConfig(num_frequencies=3),
        gradient="finite_difference",
        finite_difference_taps=taps,
        finite_difference_step=1e-6,  # float64: truncation O(h f'') (4 taps) dominates rounding
    )
    fd = fd_config.build().double()
    fd.load_state_dict(analytic.state_dict())
    x = torch.rand(64, 3, dtype=torch.float64) * 1.6 - 0.8
    a = analytic.with_gradient(x, create_graph=False)
    b = fd.with_gradient(x, create_graph=False)
    torch.testing.assert_close(b.sdf, a.sdf)
    torch.testing.assert_close(b.gradient, a.gradient, atol=1e-6, rtol=1e-5)
    assert not b.gradient.requires_grad


def first_order_only(grid: HashGrid) -> None:
    """Make the grid's lookup once-differentiable, as the fused kernel is (a double backward raises)."""
    from nsr.encodings.hashgrid import hashgrid_torch

    class FirstOrderOnly(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, table):
            with torch.enable_grad():
                x_, t_ = x.detach().requires_grad_(), table.detach().requires_grad_()
                args = (grid._res, grid._offsets, grid._dense, grid.table_size - 1, grid.config.bound)
                out = hashgrid_torch(x_, t_, *args)
            ctx.save_for_backward(x_, t_, out)
            return out.detach()

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad):
            x_, t_, out = ctx.saved_tensors
            return torch.autograd.grad(
                out, (x_, t_), grad, retain_graph=True
            )  # may run twice, as a kernel can

    grid.level_features = lambda x: FirstOrderOnly.apply(x, grid.table)


def test_finite_difference_gradient_on_a_hash_grid_needs_first_order_only():
    enc = HashGridConfig(num_levels=3, base_resolution=4, finest_resolution=16, log2_table_size=8)
    # (Geometric init zeroes the first layer's grid columns, so the table gets no gradient at step 0.)
    field = sdf_config(enc, gradient="finite_difference", geometric_init=False).build()
    assert field.finite_difference_step() == pytest.approx(1 / 16)
    first_order_only(field.encoding)  # the FD gradient must still train the table
    x = torch.rand(32, 3) * 1.6 - 0.8
    out = field.with_gradient(x, create_graph=True)
    ((out.gradient.norm(dim=-1) - 1) ** 2).mean().backward()
    assert field.encoding.table.grad.abs().sum() > 0
    # The analytic path would need the double backward the kernel does not have.
    field.zero_grad()
    with pytest.raises(RuntimeError, match=r"once_differentiable|twice"):
        (g,) = torch.autograd.grad(field.sdf(x.requires_grad_()).sum(), x, create_graph=True)
        g.sum().backward()


def test_idr_model_trains_a_hash_grid_with_finite_differences_and_tv():
    enc = HashGridConfig(num_levels=3, base_resolution=4, finest_resolution=8, log2_table_size=10)
    model = IDRModelConfig(
        sdf=sdf_config(enc, gradient="finite_difference"),
        loss=IDRLossConfig(tv_weight=1.0),
        tracer=SphereTracerConfig(num_samples=16, mask_samples=8),
    )
    model.appearance.hidden_dim, model.appearance.num_layers = 16, 1
    model = model.build()
    grid = model.sdf_field.encoding
    assert all(grid.dense_levels)  # so that the TV term is exact (deterministic)
    with torch.no_grad():  # as after a few steps: the first layer reads the grid features
        v = model.sdf_field.layers[0].parametrizations.weight.original1
        v[:, 3:] = 0.01 * torch.randn_like(v[:, 3:])
    first_order_only(grid)  # the IDR path must not need a double backward through the grid in FD mode
    n = 64
    o = torch.tensor([0.0, 0.0, -3.0]).expand(n, 3)
    d = torch.nn.functional.normalize(
        torch.cat([torch.rand(n, 2) * 0.5 - 0.25, torch.ones(n, 1)], -1), dim=-1
    )
    mask = torch.cross(d, -o, dim=-1).norm(dim=-1) < 0.4 * 3
    out = model.training_loss(RayBatch(o, d, torch.rand(n, 3), mask))
    assert out.terms["rgb"] > 0 and torch.isfinite(out.total)
    terms = out.terms["rgb"] + 0.1 * out.terms["eikonal"] + 100 * out.terms["mask"]
    torch.testing.assert_close(out.total, terms + grid.total_variation())
    terms.backward()  # everything but the TV term
    assert grid.table.grad.abs().sum() > 0
    model.eval()
    rendered = model.render(o, d)
    assert rendered.hit.any() and torch.isfinite(rendered.normals).all()


# -- the fused kernel ------------------------------------------------------------------------------

PARITY_CONFIGS = [
    # (D, F, L, log2 T, N_min, N_max, smoothstep): dense and hashed levels, F = 1, 2, 4, 8
    (3, 1, 4, 10, 4, 64, False),
    (3, 2, 6, 12, 8, 256, False),
    (3, 4, 3, 14, 4, 32, True),
    (3, 8, 2, 16, 16, 64, False),
    (2, 2, 5, 8, 4, 128, False),
]


def fused_parity(device: str, n: int = 2000) -> list[tuple[float, float, float]]:
    """Max abs errors (forward, d/dx, d/dtable) of the fused kernel against the reference."""
    from nsr.accel.hashgrid_triton import hashgrid_fused
    from nsr.encodings.hashgrid import hashgrid_torch

    errors = []
    for d, f, levels, log2t, lo, hi, smooth in PARITY_CONFIGS:
        g = HashGridConfig(
            num_levels=levels, features_per_level=f, log2_table_size=log2t, base_resolution=lo,
            finest_resolution=hi, init_scale=1.0, backend="torch",
        ).build(d).to(device)  # fmt: skip
        assert any(g.dense_levels) and not all(g.dense_levels)
        x = (torch.rand(n, d, device=device) * 2.2 - 1.1).requires_grad_(True)  # some outside the domain
        args = (g._res, g._offsets, g._dense, g.table_size - 1, 1.0, smooth)
        ref = hashgrid_torch(x, g.table, *args)
        out = hashgrid_fused(x, g.table, *args)
        go = torch.randn_like(ref)
        gx_ref, gt_ref = torch.autograd.grad(ref, [x, g.table], go)
        gx, gt = torch.autograd.grad(out, [x, g.table], go)
        errors.append(
            (
                (out - ref).abs().max().item(),
                ((gx - gx_ref).abs().max() / gx_ref.abs().max()).item(),
                (gt - gt_ref).abs().max().item(),
            )
        )
    return errors


@needs_triton
def test_fused_kernel_parity_under_the_triton_interpreter():
    """The kernel's arithmetic on CPU tensors."""
    under_triton_interpreter(
        __file__,
        "import torch; torch.manual_seed(0)\n"
        "from test_hashgrid import fused_parity\n"
        "errors = fused_parity('cpu', n=300)\n"
        "assert all(a < 1e-5 and b < 1e-5 and c < 1e-4 for a, b, c in errors), errors\n",
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_kernel_parity_on_the_gpu():
    pytest.importorskip("triton")
    for forward, d_input, d_table in fused_parity("cuda", n=100_000):
        assert forward < 1e-5 and d_input < 1e-4 and d_table < 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_backend_trains_with_finite_differences_on_the_gpu():
    pytest.importorskip("triton")
    enc = HashGridConfig(
        num_levels=4, base_resolution=4, finest_resolution=64, log2_table_size=12, backend="fused"
    )
    with pytest.raises(ValueError, match="finite_difference"):
        sdf_config(enc).build()
    field = sdf_config(enc, gradient="finite_difference").build().cuda()
    assert field.encoding.backend == "fused"
    assert_table_trains_with_finite_differences(field, "cuda")


def assert_table_trains_with_finite_differences(field, device):
    """The eikonal loss of a finite-difference field reaches the grid table once the MLP's first-layer
    weights on the grid channels (zero after the geometric init) have moved: after one Adam step."""
    optim = torch.optim.Adam(field.parameters(), lr=1e-3)
    x = torch.rand(4096, 3, device=device) * 1.6 - 0.8
    for _ in range(2):
        optim.zero_grad()
        out = field.with_gradient(x, create_graph=True)
        (((out.gradient.norm(dim=-1) - 1) ** 2).mean() + out.sdf.abs().mean()).backward()
        optim.step()
    assert field.encoding.table.grad.abs().sum() > 0


def test_torch_backend_trains_with_finite_differences():
    enc = HashGridConfig(
        num_levels=4, base_resolution=4, finest_resolution=64, log2_table_size=12, backend="torch"
    )
    assert_table_trains_with_finite_differences(sdf_config(enc, gradient="finite_difference").build(), "cpu")


def trainer_config(tiny_scene, steps, steps_per_level=2):
    """A tiny coarse-to-fine hash-grid run: 2 of 4 levels, one more every `steps_per_level` of its steps."""
    from conftest import tiny_config

    c = tiny_config(tiny_scene, steps=steps)
    c.model.sdf.encoding = HashGridConfig(
        num_levels=4,
        base_resolution=4,
        finest_resolution=32,
        log2_table_size=10,
        start_levels=2,
        unlock_every=steps_per_level / steps,
    )  # 5^3, 9^3 vertices: dense; 17^3, 33^3: hashed
    c.model.sdf.gradient = "finite_difference"
    c.model.loss.tv_weight = 0.01  # samples the hashed levels: uses the random generator
    c.val_every = 0
    return c


def test_trainer_trains_and_reopens_a_coarse_to_fine_hash_grid(tiny_scene, tmp_path):
    from nsr.data.idr import load_idr_scene
    from nsr.engine import Trainer
    from nsr.engine.run import open_run

    config = trainer_config(tiny_scene, 2, steps_per_level=1)
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "run")
    trainer.train()
    grid = trainer.model.sdf_field.encoding
    assert grid.active_levels == 3 and grid.table.grad is not None  # the last step was step 1
    reopened = open_run(tmp_path / "run", device="cpu").model.sdf_field.encoding
    assert isinstance(reopened, HashGrid) and reopened.active_levels == 4  # the schedule at step 2
    assert torch.equal(reopened.table, grid.table)


@pytest.mark.slow
def test_trainer_resumes_a_hash_grid_run_exactly(tiny_scene, tmp_path):
    from conftest import interrupted
    from nsr.data.idr import load_idr_scene
    from nsr.engine import Trainer

    scene = load_idr_scene(tiny_scene)
    straight = Trainer(trainer_config(tiny_scene, 6), scene, tmp_path / "a")
    straight.train()
    interrupted(Trainer(trainer_config(tiny_scene, 6), scene, tmp_path / "b"), at=4)
    second = Trainer(trainer_config(tiny_scene, 6), scene, tmp_path / "b")
    assert second.resume() and second.step == 4
    second.train()
    for a, b in zip(straight.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)
