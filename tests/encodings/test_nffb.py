import math

import pytest
import torch

from conftest import load_benchmark, needs_triton, under_triton_interpreter
from nsr.encodings import NFFBConfig, StyleModNFFBConfig
from nsr.fields import SDFFieldConfig

SMALL = dict(
    num_levels=3,
    features_per_level=2,
    log2_table_size=10,
    base_resolution=4,
    finest_resolution=16,
    hidden_dim=16,
    out_features=8,
)
KINDS = [NFFBConfig, StyleModNFFBConfig]


def _points(n, radius=0.9, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    return d * torch.rand(n, 1, generator=g) * radius


def _randomise_grid(enc, scale=0.3):
    """Grid features of a trained-looking field (the init is ~1e-4, which hides the grid's effect)."""
    with torch.no_grad():
        for p in enc.grid.parameters():
            p.uniform_(-scale, scale)


@pytest.mark.parametrize("cls", KINDS)
def test_shapes_and_raw_input_first(cls):
    enc = cls(**SMALL).build(3)
    x = _points(10)
    y = enc(x)
    assert enc.includes_input and enc.out_dim == 3 + 8 == y.shape[1]
    assert torch.equal(y[:, :3], x)
    bare = cls(**SMALL, include_input=False).build(3)
    assert not bare.includes_input and bare.out_dim == 8 and bare(x).shape == (10, 8)


def test_fourier_bandwidth_grows_with_level():
    enc = NFFBConfig(**{**SMALL, "num_levels": 4, "hidden_dim": 2000}, base_sigma=5.0, exp_sigma=1.5).build(3)
    assert enc.projections.shape == (4, 2, 2000)
    for i in range(4):
        assert enc.projections[i].std().item() == pytest.approx(5.0 * 1.5**i, rel=0.05)


def test_known_answer_of_the_filter_bank():
    """Two levels written out by hand: coarse band injected after layer 1, fine band after layer 2, mean of heads."""
    torch.manual_seed(0)
    cfg = NFFBConfig(**{**SMALL, "num_levels": 2}, bound=0.8, w0=7.0)
    enc = cfg.build(3)
    _randomise_grid(enc)
    x = _points(20, radius=0.7)
    g = enc.grid.level_features(x)
    e = [torch.sin(2 * math.pi * g[:, i] @ enc.projections[i]) for i in range(2)]
    h0 = torch.sin(7.0 * (x / 0.8 @ enc.first.weight.T + enc.first.bias))
    h1 = torch.sin(7.0 * (h0 @ enc.trunk[0].weight.T + enc.trunk[0].bias)) + e[0]
    h2 = torch.sin(7.0 * (h1 @ enc.trunk[1].weight.T + enc.trunk[1].bias)) + e[1]
    heads = [h @ enc.head_weight[i] + enc.head_bias[i] for i, h in enumerate([h1, h2])]
    expected = (heads[0] + heads[1]) / 2
    assert torch.allclose(enc(x)[:, 3:], expected, atol=1e-5)


@pytest.mark.parametrize("cls", KINDS)
def test_every_level_and_layer_is_used(cls):
    enc = cls(**SMALL).build(3)
    _randomise_grid(enc)
    enc(_points(64)).sum().backward()
    assert all(enc.projections.grad[i].abs().sum() > 0 for i in range(3))  # the finest levels too
    assert all(layer.weight.grad.abs().sum() > 0 for layer in enc.trunk)
    assert all(p.grad.abs().sum() > 0 for p in enc.grid.parameters())


def test_coarse_to_fine_levels_follow_the_schedule():
    enc = NFFBConfig(**SMALL, start_levels=1, unlock_every=0.1).build(3)
    _randomise_grid(enc)
    x = _points(16)
    enc.set_progress(0.0)
    assert enc.grid.level_features(x)[:, 1:].abs().sum() == 0
    early = enc(x)
    enc.set_progress(0.2)
    assert enc.grid.active_levels == 3
    assert not torch.allclose(enc(x), early)


def test_siren_initialisation():
    enc = NFFBConfig(**{**SMALL, "hidden_dim": 64}, w0=30.0).build(3)
    assert enc.first.weight.abs().max() <= 1 / 3 and enc.first.weight.abs().max() > 0.3
    limit = math.sqrt(6 / 64) / 30
    for layer in enc.trunk:
        assert limit * 0.9 < layer.weight.abs().max() <= limit


@pytest.mark.parametrize("cls", KINDS)
def test_twice_differentiable(cls):
    """The eikonal loss needs d/dparams of d sdf/dx: gradcheck and gradgradcheck in float64."""
    enc = cls(**{**SMALL, "hidden_dim": 8, "out_features": 4}, w0=5.0).build(3).double()
    _randomise_grid(enc)
    x = _points(4).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: enc(p)[:, 3:], (x,), atol=1e-5)
    assert torch.autograd.gradgradcheck(lambda p: enc(p)[:, 3:], (x,), atol=1e-5)


@pytest.mark.parametrize("cls", KINDS)
def test_eikonal_trains_the_encoding(cls):
    field = SDFFieldConfig(
        encoding=cls(**SMALL),
        hidden_dim=32,
        num_layers=3,
        skip_layers=(2,),
        feature_dim=4,
        geometric_init=False,
    ).build()
    out = field.with_gradient(_points(32), create_graph=True)
    ((out.gradient.norm(dim=-1) - 1) ** 2).mean().backward()
    enc = field.encoding
    assert enc.projections.grad.abs().sum() > 0 and enc.first.weight.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for p in enc.grid.parameters())


def _zero_crossing_radii(field, n=100):
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=torch.Generator().manual_seed(1)), dim=-1)
    t = torch.linspace(0, 1, 401)
    with torch.no_grad():
        v = field.sdf((d[:, None] * t[None, :, None]).reshape(-1, 3)).reshape(n, -1)
    assert (v[:, 0] < 0).all() and (v[:, -1] > 0).all()
    return t[(v > 0).float().argmax(dim=1)]


@pytest.mark.parametrize("cls", KINDS)
def test_geometric_init_is_a_sphere(cls):
    torch.manual_seed(0)
    radius = 0.5
    field = SDFFieldConfig(
        encoding=cls(**SMALL),
        init_radius=radius,
        hidden_dim=128,
        num_layers=4,
        skip_layers=(2,),
        feature_dim=4,
    ).build()
    x = _points(1000)
    with torch.no_grad():
        sdf = field.sdf(x)
        error = (sdf - (x.norm(dim=-1) - radius)).abs()
        assert error.mean() < 0.12
        # The filter-bank channels are switched off at step 0: the SDF ignores the encoding's parameters.
        _randomise_grid(field.encoding, scale=1.0)
        field.encoding.projections.mul_(3.0)
        assert torch.allclose(field.sdf(x), sdf)
    radii = _zero_crossing_radii(field)
    assert radii.mean().item() == pytest.approx(radius, rel=0.03)
    assert radii.std().item() < 0.2 * radius


@pytest.mark.parametrize("cls", KINDS)
def test_the_encoding_starts_learning_after_the_first_step(cls):
    """Geometric init zeroes the weights on the filter-bank channels, so step 0 moves those weights
    (their gradient is non-zero) and the encoding's parameters get gradients from step 1 on."""
    torch.manual_seed(0)
    field = SDFFieldConfig(
        encoding=cls(**SMALL), hidden_dim=32, num_layers=3, skip_layers=(2,), feature_dim=4
    ).build()
    enc = field.encoding
    optimiser = torch.optim.Adam(field.parameters(), lr=1e-3)
    x = _points(128)
    target = x.norm(dim=-1) - 0.3  # a smaller sphere than the initial one

    def step():
        optimiser.zero_grad()
        out = field.with_gradient(x, create_graph=True)
        loss = (out.sdf - target).abs().mean() + 0.1 * ((out.gradient.norm(dim=-1) - 1) ** 2).mean()
        loss.backward()
        grads = [p.grad for p in enc.parameters()]
        optimiser.step()
        return grads

    first_layer = field.layers[0].parametrizations.weight.original1
    grads = step()
    assert all(g is None or g.abs().sum() == 0 for g in grads)
    assert first_layer.grad[:, 3:].abs().sum() > 0
    grads = step()
    assert enc.projections.grad.abs().sum() > 0
    assert enc.first.weight.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for p in enc.grid.parameters())


def test_attention_is_a_softmax_over_levels_that_varies_over_space():
    enc = StyleModNFFBConfig(**SMALL).build(3)
    x = _points(200)
    a = enc.level_attention(x, enc.grid.level_features(x))
    assert a.shape == (200, 3)
    assert torch.allclose(a.sum(dim=-1), torch.ones(200), atol=1e-6)
    assert (a.std(dim=0) > 1e-3).all()  # each level's weight changes with position
    enc(x).sum().backward()
    assert enc.attention.weight.grad.abs().sum() > 0


def test_modulation_and_attention_change_the_output():
    torch.manual_seed(0)
    full = StyleModNFFBConfig(**SMALL).build(3)
    _randomise_grid(full)
    x = _points(64)
    y = full(x)
    for flag in ("modulation", "attention"):
        off = StyleModNFFBConfig(**SMALL, **{flag: False}).build(3)
        missing, _ = off.load_state_dict(full.state_dict(), strict=False)
        assert not missing
        assert (off(x) - y).abs().max() > 1e-2, flag
    full.zero_grad()
    y.sum().backward()
    assert all(s.weight.grad.abs().sum() > 0 for s in full.styles)


def test_modulation_matches_stylegan2_weights():
    """The per-point formula equals modulating the weights (w * s), demodulating each output row,
    and rescaling it to the unmodulated row norm, at every level; a constant style gives back the
    plain layer."""
    torch.manual_seed(0)
    enc = StyleModNFFBConfig(**SMALL).build(3)
    levels = enc.config.num_levels
    h = torch.randn(5, 16)
    emb = torch.randn(5, levels, 16)
    for index in range(levels):
        s = enc.style(index, emb[:, index])
        layer = enc.trunk[index]
        w = layer.weight
        expected = []
        for n in range(5):
            wm = w * s[n][None, :]
            wd = wm / torch.sqrt((wm**2).sum(dim=1, keepdim=True) + 1e-8) * w.norm(dim=1, keepdim=True)
            expected.append(torch.sin(enc.config.w0 * (wd @ h[n] + layer.bias)))
        assert torch.allclose(enc._trunk_layer(index, h, emb[:, index]), torch.stack(expected), atol=1e-5)
    with torch.no_grad():
        enc.styles[0].weight.zero_()
        enc.styles[0].bias.fill_(2.5)
    plain = torch.sin(enc.config.w0 * enc.trunk[0](h))
    assert torch.allclose(enc._trunk_layer(0, h, emb[:, 0]), plain, atol=1e-5)


def _embeddings(enc, grid_features):
    """All levels' Fourier embeddings at once, (N, L, F) -> (N, L, H): sin(2 pi g_i B_i)."""
    return torch.sin(2 * math.pi * torch.einsum("nlf,lfh->nlh", grid_features, enc.projections))


def _stylemod_per_level(enc, x):
    """The style-modulated bank written out from its docstring (the embeddings of all levels at once, the
    demodulated layer as a product, the levels' weighted heads stacked): the reference of its forward."""
    grid_features = enc.grid.level_features(x)
    embeddings = _embeddings(enc, grid_features)
    h = torch.sin(enc.config.w0 * enc.first(x / enc.config.bound))
    states = []
    config = enc.config
    for i, layer in enumerate(enc.trunk):
        if config.style_map == "linear":
            s = enc.styles[i](embeddings[:, i])
        else:
            s = enc.style_gain[i] * embeddings[:, i] + enc.style_offset[i]
        if config.demodulation == "exact":
            demod = torch.rsqrt((s * s) @ (layer.weight**2).t() + config.demodulation_eps)
            y = ((h * s) @ layer.weight.t()) * demod * layer.weight.norm(dim=1) + layer.bias
        else:
            s = s / torch.sqrt((s * s).mean(dim=1, keepdim=True) + config.demodulation_eps)
            y = (h * s) @ layer.weight.t() + layer.bias
        h = torch.sin(enc.config.w0 * y) + embeddings[:, i]
        states.append(h)
    contributions = torch.einsum("nlh,lho->nlo", torch.stack(states, dim=1), enc.head_weight) + enc.head_bias
    features = (contributions * enc.level_attention(x, grid_features)[..., None]).sum(dim=1)
    return torch.cat([x, features], dim=-1)


def _assert_matches_reference(enc, reference) -> dict:
    """`enc` and `reference(x)` (the same parameters) agree in values, input gradients and parameter
    gradients, second order included (the analytic eikonal differentiates the input gradient); returns the
    parameter gradients."""
    x = _points(200).double().requires_grad_(True)
    enc.require_double_backward()  # as an SDF field with the analytic eikonal term does
    results = []
    for fn in (enc, reference):
        y = fn(x)
        loss = (y * torch.linspace(-1, 1, y.shape[1], dtype=y.dtype)).square().sum()
        (dx,) = torch.autograd.grad(loss, x, create_graph=True)
        enc.zero_grad()
        (loss + dx.square().sum()).backward()
        results.append((y.detach(), dx.detach(), {n: p.grad.clone() for n, p in enc.named_parameters()}))
    (y0, dx0, g0), (y1, dx1, g1) = results
    assert torch.allclose(y0, y1, atol=1e-10) and torch.allclose(dx0, dx1, atol=1e-9)
    assert g0.keys() == g1.keys()
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-9), name
    return g0


@pytest.mark.parametrize("style_map", ["linear", "diagonal"])
@pytest.mark.parametrize("demodulation", ["exact", "style_rms"])
def test_modulation_matches_the_written_out_reference_forward_and_backward(style_map, demodulation):
    torch.manual_seed(0)
    enc = StyleModNFFBConfig(**SMALL, style_map=style_map, demodulation=demodulation).build(3).double()
    _randomise_grid(enc)
    grads = _assert_matches_reference(enc, lambda p: _stylemod_per_level(enc, p))
    style_params = [n for n in grads if n.startswith("style")]
    assert style_params and all(grads[n].abs().sum() > 0 for n in style_params)


LIGHT = dict(style_map="diagonal", demodulation="style_rms")
"""The style presets' cheaper modulation, the one `BankChain` does."""
WRITTEN_CONFIGS = {
    "plain": (NFFBConfig, {}),
    "plain-no-input": (NFFBConfig, {"include_input": False}),
    "style": (StyleModNFFBConfig, LIGHT),
    "style-no-attention": (StyleModNFFBConfig, {**LIGHT, "attention": False}),
    "attention-only": (StyleModNFFBConfig, {**LIGHT, "modulation": False}),
}


def _written_bank(name, **extra):
    cls, config = WRITTEN_CONFIGS[name]
    torch.manual_seed(0)
    enc = cls(**{**SMALL, **config, **extra}).build(3).double()
    _randomise_grid(enc)
    with torch.no_grad():
        for parameter in enc.parameters():  # trained-looking heads, styles and attention
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return enc


def _bank_with(enc, written, x, upstream):
    """The bank's output at x, its gradient at x and every parameter's gradient (of sum(output * upstream)),
    with `written_backward` set to `written`; checks that the written chain runs where it says it does."""
    enc.config.written_backward = written
    enc.zero_grad()
    points = x.clone().requires_grad_(True)
    y = enc(points)
    assert enc.writes_backward(points) == (written != "off")
    (y * upstream).sum().backward()
    return y.detach(), points.grad, {n: p.grad for n, p in enc.named_parameters()}


@pytest.mark.parametrize("chunk_points", [256, 8])
@pytest.mark.parametrize("name", list(WRITTEN_CONFIGS))
def test_the_written_chain_matches_autograd(name, chunk_points, monkeypatch):
    """`BankChain` (the eager training path on CUDA, `written_backward`) against autograd's composition of
    `_chain`: the values, the gradient at the points and every parameter's gradient; the parameters' sums over the
    100 points in one product and in 4 chunks of 25 (`level_products`)."""
    from nsr.encodings import bank_chain

    monkeypatch.setattr(bank_chain, "CHUNK_POINTS", chunk_points)
    enc = _written_bank(name)
    x = _points(100).double()
    upstream = torch.randn(100, enc.out_dim, dtype=torch.double)
    (y0, dx0, g0), (y1, dx1, g1) = (_bank_with(enc, written, x, upstream) for written in ("on", "off"))
    assert torch.allclose(y0, y1, atol=1e-12) and torch.allclose(dx0, dx1, atol=1e-10)
    assert g0.keys() == g1.keys()
    for key in g0:
        if g1[key] is None:
            assert g0[key] is None, key
            continue
        assert torch.allclose(g0[key], g1[key], atol=1e-10 * max(1.0, g1[key].abs().max().item())), key
    assert any(g is not None and g.abs().sum() > 0 for k, g in g0.items() if k.startswith("style")) == (
        name in ("style", "style-no-attention")
    )


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("styled", [False, True])
def test_the_written_chain_passes_gradcheck(weighted, styled, monkeypatch):
    """`BankChain.apply` alone against finite differences in float64, for every input that takes a gradient (the
    parameters' sums over the points in two chunks)."""
    from nsr.encodings import bank_chain
    from nsr.encodings.bank_chain import BankChain

    monkeypatch.setattr(bank_chain, "CHUNK_POINTS", 3)
    g = torch.Generator().manual_seed(1)
    levels, points, feats, hidden, out = 3, 6, 2, 4, 3

    def tensor(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.double) * scale).requires_grad_(True)

    weights = torch.softmax(tensor(points, levels), dim=1).detach().requires_grad_(True) if weighted else None
    gain, offset = (tensor(levels, hidden), tensor(levels, hidden)) if styled else (None, None)
    inputs = (
        tensor(points, hidden),
        tensor(points, levels, feats, scale=0.3),
        tensor(levels, feats, hidden, scale=0.3),
        tensor(levels, hidden, hidden, scale=0.3),
        tensor(levels, hidden),
        tensor(levels, hidden, out),
        tensor(levels, out),
        weights,
        gain,
        offset,
        2.0,  # w0: small, so that the finite differences resolve the sines
        1e-8,
    )
    assert torch.autograd.gradcheck(BankChain.apply, inputs)


@pytest.mark.parametrize("points", [5, 256, 512, 1000, 997, 15360])
def test_level_products_sum_each_levels_products_over_the_points_in_chunks(points, monkeypatch):
    """`level_products` (the written chain's sums over the points) equals one batched product, for contiguous and
    strided inputs, and splits the points into the largest power of two of chunks of at least 256 points that
    divides them (none for 5, 256, 997)."""
    from nsr.encodings.bank_chain import level_products

    batch_sizes = []
    bmm = torch.bmm

    def counted(a, b):
        batch_sizes.append(a.shape[0])
        return bmm(a, b)

    g = torch.Generator().manual_seed(points)
    a = torch.randn(8, points, 64, generator=g, dtype=torch.double)
    b = torch.randn(points, 8, 2, generator=g, dtype=torch.double).transpose(
        0, 1
    )  # strided, as a transpose gives
    reference = bmm(a.transpose(1, 2), b)
    monkeypatch.setattr(torch, "bmm", counted)
    for left, right in ((a, b), (a, b.contiguous())):
        assert torch.allclose(level_products(left, right), reference, rtol=1e-12, atol=1e-12)
    chunks = {5: 1, 256: 1, 512: 2, 1000: 2, 997: 1, 15360: 32}[points]
    assert batch_sizes == [8 * chunks] * 2


def test_the_written_chain_is_taken_only_where_it_applies(monkeypatch):
    """`written_backward: auto` on CUDA only (where it was measured faster, for both banks); never
    with gradient off, for a model that differentiates the bank's gradient (whose second derivative `BankChain`
    does not give: differentiating it twice raises) or for a modulation it does not do (the linear style map,
    the exact demodulation)."""
    enc = _written_bank("style")
    x = _points(10).double()
    assert not enc.writes_backward(x)  # auto, CPU
    enc.config.written_backward = "on"
    assert enc.writes_backward(x)
    with torch.no_grad():
        assert not enc.writes_backward(x)
    points = x.clone().requires_grad_(True)
    (dx,) = torch.autograd.grad(enc(points).square().sum(), points, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        dx.square().sum().backward()
    enc.require_double_backward()
    assert not enc.writes_backward(x)
    for modulation in ({"style_map": "linear"}, {"demodulation": "exact"}):
        assert not _written_bank("style", written_backward="on", **modulation).writes_backward(x)
    auto, plain = _written_bank("style"), _written_bank("plain")
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    assert auto.writes_backward(x) and plain.writes_backward(x)
    auto.config.written_backward = plain.config.written_backward = "off"
    assert not auto.writes_backward(x) and not plain.writes_backward(x)


def test_a_failing_written_chain_leaves_autograds_composition_with_a_warning(monkeypatch, caplog):
    """Where `BankChain` fails (a device or build whose operations it uses fail), the evaluation and every later
    one run autograd's composition, with one warning naming the error."""
    from nsr.encodings.bank_chain import BankChain

    enc = _written_bank("style", written_backward="on")
    x = _points(20).double()
    expected = enc._chain(x, enc.grid.level_features(x))

    def fail(*args):
        raise RuntimeError("no kernel image for this device")

    monkeypatch.setattr(BankChain, "apply", fail)
    with caplog.at_level("WARNING"):
        assert torch.equal(enc(x), expected)
    assert "no kernel image" in enc.written_unavailable and not enc.writes_backward(x)
    assert sum("written-out training chain failed" in r.message for r in caplog.records) == 1
    enc(x)
    assert sum("written-out training chain failed" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize("name, bar", [("plain", 0.7), ("style", 0.5)])
def test_the_written_chain_dispatches_fewer_operations(name, bar):
    """What the written chain is for: an eager GPU step of the bank is bound by its launches. Counted by
    benchmarks/bench_bank_training.py's dispatch counter over the chain's forward and backward (the grid's
    features given, so the count is the chain's)."""
    counter = load_benchmark("bench_bank_training").OperationCount
    enc = _written_bank(name)
    x = _points(64).double()
    grid_features = enc.grid.level_features(x).detach().requires_grad_(True)
    counts = []
    for chain in (enc._written_chain, enc._chain):
        with counter() as operations:
            chain(x, grid_features).square().sum().backward()
        counts.append(operations.count)
    assert counts[0] < bar * counts[1], counts


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("preset", ["nffb-fused", "stylemod-nffb-fused"])
def test_the_written_chain_matches_autograd_on_cuda(preset, monkeypatch):
    """The presets' banks on CUDA in float32 (the fused grid, TF32 off): the written chain (`written_backward:
    on`) matches autograd's composition in values and gradients."""
    from nsr.config import get_preset

    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    torch.manual_seed(0)
    enc = get_preset(preset).model.sdf.encoding.build(3).cuda()
    enc.set_progress(1.0)
    _randomise_grid(enc, scale=0.05)
    x = torch.rand(20_000, 3, device="cuda") * 1.6 - 0.8
    upstream = torch.randn(20_000, enc.out_dim, device="cuda")
    (y0, dx0, g0), (y1, dx1, g1) = (_bank_with(enc, written, x, upstream) for written in ("on", "off"))

    def close(a, b):
        return (a - b).abs().max() <= 1e-4 * b.abs().max() + 1e-6

    assert close(y0, y1) and close(dx0, dx1)
    for key, grad in g1.items():
        assert grad is not None and close(g0[key], grad), key


def test_style_rms_is_the_exact_demodulation_for_rows_of_one_magnitude():
    """Where every entry of each trunk row has one magnitude (SIREN's initialisation draws them so in
    expectation), (W^2 s^2)_j = ||w_j||^2 mean(s^2): the two demodulations agree; on other rows they differ."""
    torch.manual_seed(0)
    exact = StyleModNFFBConfig(**SMALL).build(3).double()
    cheap = StyleModNFFBConfig(**SMALL, demodulation="style_rms").build(3).double()
    cheap.load_state_dict(exact.state_dict())
    h, embedding = torch.randn(7, 16).double(), torch.randn(7, 16).double()
    with torch.no_grad():
        layer = exact.trunk[1]
        magnitudes = torch.rand(16, 1).double() / 4 + 0.05
        layer.weight.copy_(magnitudes * torch.randn(16, 16).sign())
        cheap.trunk[1].weight.copy_(layer.weight)
    assert torch.allclose(exact._trunk_layer(1, h, embedding), cheap._trunk_layer(1, h, embedding), atol=1e-9)
    with torch.no_grad():
        layer.weight.mul_(torch.rand(16, 16).double() + 0.5)
        cheap.trunk[1].weight.copy_(layer.weight)
    assert (exact._trunk_layer(1, h, embedding) - cheap._trunk_layer(1, h, embedding)).abs().max() > 1e-2


def test_the_diagonal_style_map_has_a_gain_and_an_offset_per_channel():
    torch.manual_seed(0)
    enc = StyleModNFFBConfig(**SMALL, style_map="diagonal").build(3)
    assert enc.styles is None and enc.style_gain.shape == enc.style_offset.shape == (3, 16)
    embedding = torch.randn(5, 16)
    expected = enc.style_gain[2] * embedding + enc.style_offset[2]
    assert torch.allclose(enc.style(2, embedding), expected)
    assert sum(p.numel() for p in enc.parameters()) < sum(
        p.numel() for p in StyleModNFFBConfig(**SMALL).build(3).parameters()
    )


def _nffb_reference(enc, x):
    """The plain bank as its docstring writes it: per-level heads, then their mean."""
    embeddings = _embeddings(enc, enc.grid.level_features(x))
    h = torch.sin(enc.config.w0 * enc.first(x / enc.config.bound))
    states = []
    for i, layer in enumerate(enc.trunk):
        h = torch.sin(enc.config.w0 * layer(h)) + embeddings[:, i]
        states.append(h)
    heads = [state @ enc.head_weight[i] + enc.head_bias[i] for i, state in enumerate(states)]
    return torch.cat([x, torch.stack(heads).mean(dim=0)], dim=-1)


def test_accumulated_heads_match_the_mean_of_the_per_level_heads_forward_and_backward():
    torch.manual_seed(0)
    enc = NFFBConfig(**SMALL).build(3).double()
    _randomise_grid(enc)
    with torch.no_grad():
        enc.head_bias.uniform_(-1, 1)
    grads = _assert_matches_reference(enc, lambda p: _nffb_reference(enc, p))
    assert all(grads[n].abs().sum() > 0 for n in ("head_weight", "head_bias"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", KINDS)
def test_fused_grid_matches_the_torch_grid_on_the_gpu(cls):
    pytest.importorskip("triton")
    torch.manual_seed(0)
    config = {**SMALL, "num_levels": 4, "log2_table_size": 14, "finest_resolution": 256}
    reference = cls(**config, backend="torch").build(3).cuda()
    _randomise_grid(reference, scale=0.1)
    fused = cls(**config, backend="fused").build(3).cuda()
    fused.load_state_dict(reference.state_dict())
    x = (torch.rand(20_000, 3, device="cuda") * 2 - 1).requires_grad_(True)
    outputs, grads = [], []
    for enc in (reference, fused):
        y = enc(x)
        (dx,) = torch.autograd.grad(y.square().sum(), x, retain_graph=True)
        enc.zero_grad()
        y.square().sum().backward()
        outputs.append(y)
        grads.append((dx, [p.grad.clone() for p in enc.parameters()]))
    assert torch.allclose(outputs[0], outputs[1], atol=1e-4)
    assert torch.allclose(grads[0][0], grads[1][0], rtol=1e-3, atol=1e-3)
    for a, b in zip(grads[0][1], grads[1][1]):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-3)


# -- the fused inference kernel (nsr.accel.nffb_triton) --------------------------------------------------

FUSED_CASES = [
    # (kind, overrides): both banks at the presets' widths, the style bank with each mechanism alone, levels
    # that are not a power of two with two of them locked, four features per level, no raw input
    ("nffb", {}),
    ("stylemod-nffb", {}),
    ("stylemod-nffb", {"attention": False}),
    ("stylemod-nffb", {"modulation": False}),
    ("stylemod-nffb", {"style_map": "diagonal"}),
    ("stylemod-nffb", {"demodulation": "style_rms"}),
    ("stylemod-nffb", {"style_map": "diagonal", "demodulation": "style_rms", "attention": False}),
    ("nffb", {"num_levels": 5, "start_levels": 3, "unlock_every": 0.1}),
    ("stylemod-nffb", {"num_levels": 5, "start_levels": 3, "unlock_every": 0.1}),
    ("stylemod-nffb", {"features_per_level": 4, "include_input": False, "out_features": 32}),
]


def fused_bank_parity(device: str, n: int = 333, **knobs) -> list[float]:
    """Largest |fused - torch| of each case in `FUSED_CASES`, relative to the output's largest value (the
    reference runs the torch grid and bank; the kernel gets the same grid features and `knobs`)."""
    from nsr.accel.nffb_triton import filter_bank_forward  # noqa: F401 (Triton must import)

    errors = []
    for kind, overrides in FUSED_CASES:
        torch.manual_seed(0)
        cls = NFFBConfig if kind == "nffb" else StyleModNFFBConfig
        config = {
            **SMALL,
            "num_levels": 4,
            "hidden_dim": 64,
            "out_features": 64,
            "w0": 3.0,
            "base_sigma": 1.0,
        }
        enc = cls(**{**config, **overrides}, backend="torch").build(3).to(device)
        enc.set_progress(0.0)
        _randomise_grid(enc)
        with torch.no_grad():
            for p in enc.parameters():  # trained-looking weights, not only the initialisation
                p.add_(torch.randn_like(p) * 0.05 * p.abs().mean().clamp_min(1e-3))
            x = _points(n, radius=0.95).to(device)
            reference = enc(x)
            fused = enc.fused_forward(x, enc.grid.level_features(x), **knobs)
        assert fused.shape == reference.shape
        errors.append(((fused - reference).abs().max() / reference.abs().max()).item())
    return errors


@needs_triton
def test_fused_bank_matches_the_torch_bank_under_the_triton_interpreter():
    """The kernel's arithmetic on CPU tensors."""
    under_triton_interpreter(
        __file__,
        "from test_nffb import fused_bank_parity\n"
        "errors = fused_bank_parity('cpu')\n"
        "assert all(e < 1e-5 for e in errors), errors\n"
        "errors = fused_bank_parity('cpu', n=40, max_registers=128)  # a GPU's cap, no effect here\n"
        "assert all(e < 1e-5 for e in errors), errors\n",
    )


def test_the_fused_bank_is_used_only_without_a_gradient_on_cuda():
    """On a CPU, or with a gradient, or with the torch grid, evaluations run the PyTorch bank."""
    enc = StyleModNFFBConfig(**{**SMALL, "hidden_dim": 64, "out_features": 64}, backend="torch").build(3)
    x = _points(10)
    with torch.no_grad():
        assert not enc.fused_inference(x)
    assert not enc.fused_inference(x)


def test_fused_bank_max_points_sends_larger_evaluations_to_pytorch(monkeypatch):
    """`fused_bank_max_points`: evaluations of more points than it run the PyTorch bank (0: no limit)."""
    enc = NFFBConfig(**{**SMALL, "hidden_dim": 64, "out_features": 64}, backend="torch").build(3)
    monkeypatch.setattr(enc.grid, "backend", "fused")
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))  # "CUDA" for the dispatch
    small, large = _points(100), _points(101)
    with torch.no_grad():
        assert enc.fused_inference(small) and enc.fused_inference(large)
        enc.config.fused_bank_max_points = 100
        assert enc.fused_inference(small) and not enc.fused_inference(large)
    with pytest.raises(ValueError, match="fused-bank-max-points -1: must be an integer >= 0"):
        NFFBConfig(**SMALL, fused_bank_max_points=-1).validate()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_bank_matches_the_torch_bank_on_the_gpu():
    pytest.importorskip("triton")
    errors = fused_bank_parity("cuda", n=50_000)
    assert all(e < 1e-5 for e in errors), errors
    # registers capped below what the compiler takes (the style-modulated kernel's 172 at 16 points, 8 warps)
    capped = fused_bank_parity("cuda", n=50_000, block=16, num_warps=8, max_registers=128)
    assert all(e < 1e-5 for e in capped), capped


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", KINDS)
def test_banks_on_the_fused_grid_evaluate_without_gradient_in_one_kernel(cls):
    """With the fused grid, an evaluation without gradient takes the kernel and agrees with the one with."""
    pytest.importorskip("triton")
    torch.manual_seed(0)
    config = {**SMALL, "num_levels": 6, "hidden_dim": 64, "out_features": 64, "w0": 3.0, "base_sigma": 1.0}
    enc = cls(**config, backend="fused").build(3).cuda()
    _randomise_grid(enc)
    x = _points(20_000).cuda()
    with torch.no_grad():
        assert enc.fused_inference(x)
        fused = enc(x)
    assert not enc.fused_inference(x)
    eager = enc(x).detach()
    enc.config.fused_bank = False
    with torch.no_grad():
        assert not enc.fused_inference(x)
    assert torch.allclose(fused, eager, rtol=1e-5, atol=1e-5 * eager.abs().max().item())


def test_a_failing_fused_kernel_leaves_the_pytorch_trunk_with_a_warning(monkeypatch, caplog):
    """Where Triton cannot build the kernel, the evaluation (and every later one) runs the PyTorch bank."""
    enc = NFFBConfig(**{**SMALL, "hidden_dim": 64, "out_features": 64}, backend="torch").build(3)
    x = _points(50)
    with torch.no_grad():
        expected = enc(x)
    calls = []

    def broken(x, grid_features):
        calls.append(1)
        raise RuntimeError("no kernel for this GPU")

    features = enc.grid.level_features(x)
    monkeypatch.setattr(enc, "fused_forward", broken)
    monkeypatch.setattr(enc.grid, "backend", "fused")
    monkeypatch.setattr(enc.grid, "level_features", lambda _: features)  # the torch lookup, on "CUDA"
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    with torch.no_grad(), caplog.at_level("WARNING", logger="nsr.encodings.nffb"):
        assert enc.fused_inference(x)
        assert torch.equal(enc(x), expected)
        assert not enc.fused_inference(x)
        assert torch.equal(enc(x), expected)
    assert len(calls) == 1
    assert "no kernel for this GPU" in caplog.text and "PyTorch trunk" in caplog.text


@pytest.mark.parametrize("kind", ["nffb", "stylemod-nffb"])
def test_the_fused_bank_knobs_of_the_config_reach_the_kernel(monkeypatch, kind):
    """`fused_bank_block` / `_warps` / `_mod_precision` / `_max_registers` are passed on (0 / auto: the kernel's
    defaults); the modulation's precision only to the style-modulated bank, the only one with such products."""
    import nsr.accel.nffb_triton as kernel

    seen = []
    monkeypatch.setattr(kernel, "filter_bank_forward", lambda *a, **knobs: seen.append(knobs))
    cls = NFFBConfig if kind == "nffb" else StyleModNFFBConfig
    base = {**SMALL, "hidden_dim": 64, "out_features": 64}
    x = _points(20)
    knobs = {"fused_bank_block": 32, "fused_bank_warps": 8, "fused_bank_mod_precision": "tf32"}
    for fields in ({}, {**knobs, "fused_bank_max_registers": 128}):
        enc = cls(**base, **fields, backend="torch").build(3)
        enc.fused_forward(x, enc.grid.level_features(x))
    tuned = {"block": 32, "num_warps": 8, "max_registers": 128}
    tuned |= {"mod_precision": "tf32"} if kind == "stylemod-nffb" else {}
    names = ("block", "num_warps", "mod_precision", "max_registers")
    assert [{k: v for k, v in s.items() if k in names} for s in seen] == [{}, tuned]
    with pytest.raises(ValueError, match="fused-bank-block 24: must be 0 or a power of two"):
        cls(**base, fused_bank_block=24).validate()
    with pytest.raises(ValueError, match="fused-bank-max-registers 300: must be 0"):
        cls(**base, fused_bank_max_registers=300).validate()


@needs_triton
@pytest.mark.parametrize(
    "modulation, warps",
    [(None, 4), ({"style_map": "diagonal", "demodulation": "style_rms"}, 4), ({}, 8)],
    ids=["plain", "cheaper-modulation", "exact-modulation"],
)
def test_the_fused_bank_kernel_runs_8_warps_for_the_exact_modulation_only(monkeypatch, modulation, warps):
    """The kernel's default warps: 8 for the exact modulation's doubled products, 4 for the plain bank and the
    style presets' cheaper modulation (which has the plain kernel's products; 3% faster a step with 4 on an H100)."""
    import nsr.accel.nffb_triton as kernel

    launches = []

    class Launcher:
        def __getitem__(self, grid):
            return lambda *args, **meta: launches.append(meta["num_warps"])

    monkeypatch.setattr(kernel, "_filter_bank_fwd", Launcher())
    base = {**SMALL, "hidden_dim": 16, "out_features": 16, "backend": "torch"}
    enc = (NFFBConfig(**base) if modulation is None else StyleModNFFBConfig(**base, **modulation)).build(3)
    x = _points(20)
    enc.fused_forward(x, enc.grid.level_features(x))
    assert launches == [warps]


@needs_triton
def test_kernel_registers_compiles_the_fused_bank_for_a_gpu_without_one():
    """`benchmarks/kernel_registers.py` reads a setting's registers and spills from ptxas, on a CPU too."""
    tool = load_benchmark("kernel_registers")
    try:
        tool.ptxas()
    except SystemExit as missing:
        pytest.skip(str(missing))
    row = tool.compile_kernel(90, 16, 8, "stylemod-nffb", "tf32x3", "tf32x3", None)
    assert 0 < row["registers"] <= 255 and row["spill_stores"] >= 0
    assert row["mma"] + row["wgmma"] > 0  # the levels' products are tensor-core instructions
    if row["registers"] > 96:  # a cap (PTX's .maxnreg) holds
        capped = tool.compile_kernel(90, 16, 8, "stylemod-nffb", "tf32x3", "tf32x3", None, max_registers=96)
        assert capped["registers"] <= 96 and capped["mma"] == row["mma"]
    light = tool.compile_kernel(90, 16, 8, "stylemod-nffb:diagonal,style_rms", "tf32x3", "tf32x3", None)
    assert 0 < light["mma"] + light["wgmma"] < row["mma"] + row["wgmma"]  # no style or demodulation products


def _compiled_against_eager(cls, config: dict, n: int, device: str = "cpu", tol: float = 1e-5) -> None:
    """A bank with `compile_training` and the same bank eager: output, input and parameter gradients agree."""
    torch.manual_seed(0)
    eager = cls(**config).build(3).to(device)
    _randomise_grid(eager)
    compiled = cls(**config, compile_training=True).build(3).to(device)
    compiled.load_state_dict(eager.state_dict())
    results = []
    for enc in (eager, compiled):
        x = _points(n).to(device).requires_grad_(True)
        assert enc.compiles(x) == (enc is compiled)
        out = enc(x)
        (out.square().sum() + out[:, 3:].sin().sum()).backward()
        results.append([out.detach(), x.grad, *(p.grad for p in enc.parameters())])
    assert compiled.compile_unavailable is None
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, rtol=tol, atol=tol * a.abs().max().item())


LIGHT_STYLE = {"style_map": "diagonal", "demodulation": "style_rms"}
"""The style presets' cheaper modulation (presets.STYLE_BANK_MODULATION)."""


@pytest.mark.parametrize(
    "cls, extra", [(NFFBConfig, {}), (StyleModNFFBConfig, {}), (StyleModNFFBConfig, LIGHT_STYLE)]
)
def test_the_compiled_training_chain_matches_the_eager_one_forward_and_backward(cls, extra):
    """`compile_training`: an evaluation with gradient runs the chain compiled by Inductor (10-20 s to compile on
    a 2-core CPU), with the eager chain's output and parameter and input gradients."""
    _compiled_against_eager(cls, {**SMALL, **extra, "backend": "torch", "w0": 3.0}, n=300)


def test_the_compiled_chain_is_not_used_without_gradient_or_with_double_backward():
    enc = NFFBConfig(**SMALL, backend="torch", compile_training=True).build(3)
    x = _points(10)
    with torch.no_grad():
        assert not enc.compiles(x)
    assert enc.compiles(x)
    # the analytic normals differentiate the bank's gradient
    for gradient in ("finite_difference", "analytic"):
        field = SDFFieldConfig(encoding=enc.config, gradient=gradient, hidden_dim=32, num_layers=2).build()
        assert field.encoding.compiles(x) == (gradient == "finite_difference")


def test_a_failing_compile_leaves_the_eager_chain_with_a_warning(monkeypatch, caplog):
    enc = NFFBConfig(**SMALL, backend="torch", compile_training=True).build(3)
    x = _points(50)
    expected = enc._chain(x, enc.grid.level_features(x)).detach()

    def broken(*args):
        raise RuntimeError("Inductor: no C++ compiler\nmore lines")

    monkeypatch.setattr(enc, "_compiled_chain", broken, raising=False)
    assert torch.equal(enc(x).detach(), expected)
    assert enc.compile_unavailable == "RuntimeError: Inductor: no C++ compiler" and not enc.compiles(x)
    assert "compiling the bank's training chain failed" in caplog.text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    "cls, extra", [(NFFBConfig, {}), (StyleModNFFBConfig, {}), (StyleModNFFBConfig, LIGHT_STYLE)]
)
def test_the_compiled_training_chain_matches_the_eager_one_on_the_gpu(cls, extra):
    """As the CPU test, on CUDA with the fused grid at a NeuS step's order of points (Inductor's Triton kernels)."""
    pytest.importorskip("triton")
    big = {"num_levels": 8, "hidden_dim": 64, "out_features": 64, "w0": 3.0, "backend": "fused"}
    config = {**SMALL, **extra, **big}
    _compiled_against_eager(cls, config, n=100_000, device="cuda", tol=1e-4)
