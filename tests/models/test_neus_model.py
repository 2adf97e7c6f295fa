"""The NeuS model behind the contract: every network trains, masked and unmasked losses, renders."""

import pytest
import torch

from nsr.config import get_preset
from nsr.models import RayBatch


def rays(n=256):
    o = torch.tensor([0.0, 0.0, -3.0]).expand(n, 3)
    d = torch.nn.functional.normalize(
        torch.cat([torch.rand(n, 2) * 0.5 - 0.25, torch.ones(n, 1)], -1), dim=-1
    )
    mask = torch.cross(d, -o, dim=-1).norm(dim=-1) < 0.45 * 3
    return o, d, mask


def small_neus(unmasked: bool = False):
    config = get_preset("neus-demo").model
    config.renderer.num_samples, config.renderer.num_importance, config.renderer.up_sample_steps = 16, 16, 2
    config.renderer.occupancy.resolution = 16
    config.loss.masked_background = "scene"  # NeuS's own (the preset's `uniform` has its own tests)
    if unmasked:
        config.without_masks()
    return config.build()


@pytest.mark.parametrize("unmasked", [False, True])
def test_every_network_gets_gradients(unmasked):
    """Every parameter of the SDF (weight-normalised weights included), appearance, variance and (unmasked)
    background receives a gradient from one training loss."""
    model = small_neus(unmasked)
    o, d, mask = rays()
    out = model.training_loss(
        RayBatch(o, d, torch.rand(o.shape[0], 3), mask if not unmasked else torch.ones_like(mask))
    )
    assert set(out.terms) == ({"rgb", "eikonal"} if unmasked else {"rgb", "eikonal", "mask"})
    assert {"psnr", "inv_s", "opacity"} <= set(out.metrics)
    out.total.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient: {missing}"
    assert (model.background_field is not None) == unmasked


def test_render_sees_the_initial_sphere_and_keeps_the_background_outside():
    model = small_neus()
    model.eval()
    o, d, _ = rays()
    out = model.render(o, d, chunk_size=16)
    # The initial SDF is only roughly a sphere: judge each ray by the field's own minimum along it. With the
    # initial inv_s of 20 (a logistic scale of 0.05), a ray reaching SDF -0.25 is opaque, one staying above
    # 0.15 nearly transparent.
    t = torch.linspace(0, 6, 600)
    with torch.no_grad():
        along = model.sdf((o[:, None] + d[:, None] * t[None, :, None]).reshape(-1, 3)).view(len(o), -1)
    inside, outside = along.min(1).values < -0.25, along.min(1).values > 0.15
    assert inside.sum() > 20 and outside.sum() > 20
    assert out.opacity[inside].min() > 0.9 and out.opacity[outside].max() < 0.1
    torch.testing.assert_close(out.rgb[outside], torch.zeros_like(out.rgb[outside]), atol=0.05, rtol=0)
    assert torch.allclose(out.normals[inside].norm(dim=-1), torch.ones(int(inside.sum())), atol=1e-4)
    assert model.background_rgb == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("unmasked", [False, True])
def test_static_loss_equals_the_ordinary_loss_with_its_schedules_in_tensors(unmasked):
    """`training_loss(batch, static=True)` (what a captured CUDA-graph step runs) reads the annealing ratio and
    the curvature ramp from tensors that `set_progress` fills: same values and gradients as the ordinary loss
    part-way through both schedules."""
    model = small_neus(unmasked)
    model.config.cos_anneal = 0.5
    model.config.loss.curvature_weight, model.config.loss.curvature_warmup = 0.01, 0.4
    model.set_progress(0.2)
    assert model._anneal.item() == pytest.approx(0.4) and model._curvature_ramp.item() == pytest.approx(0.5)
    o, d, mask = rays()
    batch = RayBatch(o, d, torch.rand(o.shape[0], 3), torch.ones_like(mask) if unmasked else mask)
    results = []
    for static in (False, True):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(3)
        out = model.training_loss(batch, static=static)
        out.total.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out, grads))
    (ordinary, grads), (static_out, static_grads) = results
    assert "curvature" in ordinary.terms
    torch.testing.assert_close(static_out.total, ordinary.total)
    for name in ordinary.terms:
        torch.testing.assert_close(static_out.terms[name], ordinary.terms[name])
    assert static_grads.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(static_grads[name], grad, msg=name)


def test_evaluations_render_in_the_renderers_chunks(monkeypatch):
    """A camera, a validation view or `nsr eval` renders `renderer.chunk_size` rays at a time (not IDR's 16384:
    each NeuS ray has its samples, all evaluated with their normals), unless told another chunk size."""
    model = small_neus()
    model.config.renderer.chunk_size = 100
    sizes = []
    render_rays = model._render
    monkeypatch.setattr(model, "_render", lambda o, d, **kw: sizes.append(len(o)) or render_rays(o, d, **kw))
    k = torch.tensor([[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]])
    c2w = torch.eye(4)
    c2w[2, 3] = -3.0
    model.render_camera(k.numpy(), c2w.numpy(), 16, 16)
    assert sizes == [100, 100, 56] and model.eval_chunk_size == 100
    sizes.clear()
    model.render_camera(k.numpy(), c2w.numpy(), 16, 16, chunk_size=128)
    assert sizes == [128, 128]


def test_colour_init_mean_starts_the_colour_network_at_the_masked_pixels_mean(tiny_scene, tmp_path):
    """`colour_init: mean`: a zero pre-activation of the colour network gives the mean
    colour of the masked training pixels; `grey` (the default) leaves mid-grey, and the weights are the same."""
    import numpy as np

    from conftest import tiny_config
    from nsr.data.idr import load_idr_scene
    from nsr.engine import Trainer
    from nsr.models.neus import mean_colour

    images = np.zeros((2, 4, 4, 3), np.float32)
    images[0, :2] = (0.9, 0.6, 0.3)
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2] = True
    assert np.allclose(mean_colour(images, masks), (0.9, 0.6, 0.3))
    assert np.allclose(mean_colour(images, np.zeros_like(masks)), 0.5)  # no masked pixel: mid-grey

    scene = load_idr_scene(tiny_scene)
    trainers = {}
    for init in ("grey", "mean"):
        config = tiny_config(tiny_scene)
        config.model = get_preset("neus-demo").model
        config.model.colour_init = init
        trainers[init] = Trainer(config, scene, tmp_path / init)
    grey, mean = (trainers[k].model.appearance.layers[-1] for k in ("grey", "mean"))
    train = trainers["mean"].train_scene
    expected = train.images[train.masks].mean(0)
    assert torch.allclose(torch.sigmoid(mean.bias), torch.from_numpy(expected), atol=1e-5)
    assert not torch.allclose(torch.sigmoid(grey.bias), torch.from_numpy(expected), atol=0.05)
    assert torch.equal(grey.weight, mean.weight)
    for name in ("neus-nffb-fused", "neus-stylemod-nffb-fused", "neus-hashgrid-fused", "neus-positional"):
        assert get_preset(name).model.colour_init == "grey"  # `mean` lost on the GPU (RESULTS.md section 4)


@pytest.mark.parametrize("until", [0.0, 1.0])
def test_the_surface_colour_inside_the_masks_does_not_see_the_background(until):
    """`loss.surface_colour_until`: inside the masks the colour loss compares the foreground's colour over its
    opacity (at least `surface_floor`), so a ray that loses its surface no longer shows the background and the
    colour loss neither rewards nor punishes the opacity. The rendered colour (NeuS's) changes with the
    background behind a ray that is not opaque."""
    torch.manual_seed(0)
    model = small_neus()
    model.config.loss.surface_colour_until = until
    o, d, mask = rays()
    target = torch.rand(o.shape[0], 3)
    losses = {}
    for colour in ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)):
        model.background = torch.tensor(colour)
        torch.manual_seed(1)  # the same samples along the rays
        losses[colour] = model.training_loss(RayBatch(o, d, target, mask)).terms["rgb"]
    torch.manual_seed(1)
    rendered = model._render(o, d, training=True)
    assert (
        mask & (rendered.opacity < 0.99)
    ).sum() > 5  # masked rays the initial sphere leaves part-transparent
    if until == 0.0:
        assert not torch.allclose(losses[(0.0, 0.0, 0.0)], losses[(1.0, 1.0, 1.0)], atol=1e-3)
    else:
        torch.testing.assert_close(losses[(0.0, 0.0, 0.0)], losses[(1.0, 1.0, 1.0)])
        colour = rendered.foreground / rendered.opacity.clamp_min(0.05)[:, None]
        expected = (colour - target).abs().sum(-1)[mask].mean()
        torch.testing.assert_close(losses[(1.0, 1.0, 1.0)], expected)


def test_a_random_background_inside_the_masks_charges_any_transparency():
    """`loss.masked_background: random`: inside the masks the colour loss composites the foreground over a random
    colour per ray (not the scene's background, which the loss then no longer sees), so a part-transparent ray
    costs loss whatever the object's colour; the mask loss and the metrics are unchanged."""
    torch.manual_seed(0)
    model = small_neus()
    model.config.loss.masked_background = "random"
    o, d, mask = rays()
    target = torch.rand(o.shape[0], 3)
    batch = RayBatch(o, d, target, mask)
    losses = {}
    for colour in ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)):
        model.background = torch.tensor(colour)
        torch.manual_seed(1)
        losses[colour] = model.training_loss(batch).terms
    torch.testing.assert_close(losses[(0.0, 0.0, 0.0)]["rgb"], losses[(1.0, 1.0, 1.0)]["rgb"])
    torch.testing.assert_close(losses[(0.0, 0.0, 0.0)]["mask"], losses[(1.0, 1.0, 1.0)]["mask"])
    torch.manual_seed(1)
    out = model._render(o, d, training=True)
    assert (mask & (out.opacity < 0.99)).sum() > 5
    noise = torch.rand_like(out.foreground)  # drawn right after the render, as the loss draws it
    expected = (out.foreground + (1 - out.opacity)[:, None] * noise - target).abs().sum(-1)[mask].mean()
    torch.testing.assert_close(losses[(1.0, 1.0, 1.0)]["rgb"], expected)
    # a white object on the white background: the scene's background makes transparency free, a random one not
    white = RayBatch(o, d, torch.ones_like(target), mask)
    model.background = torch.ones(3)
    rgb_loss = {}
    for background in ("scene", "random"):
        model.config.loss.masked_background = background
        torch.manual_seed(1)
        rgb_loss[background] = model.training_loss(white).terms["rgb"].item()
    assert rgb_loss["random"] > rgb_loss["scene"] + 0.05
    config = get_preset("neus-demo")
    config.model.loss.masked_background = "white"
    from nsr import checks

    with pytest.raises(ValueError, match=r"model\.loss\.masked-background"):
        checks.validate_config(config)


def test_the_uniform_background_is_the_random_ones_expectation_inside_the_masks():
    """`loss.masked_background: uniform`: the colour loss inside the masks is the closed-form expectation over a
    uniformly random background (`uniform_background_l1_loss`), blind to the scene's background."""
    from nsr.losses import uniform_background_l1_loss

    torch.manual_seed(0)
    model = small_neus()
    model.config.loss.masked_background = "uniform"
    o, d, mask = rays()
    target = torch.rand(o.shape[0], 3)
    losses = []
    for colour in ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)):
        model.background = torch.tensor(colour)
        torch.manual_seed(1)
        losses.append(model.training_loss(RayBatch(o, d, target, mask)).terms["rgb"])
    torch.testing.assert_close(losses[0], losses[1])
    torch.manual_seed(1)
    out = model._render(o, d, training=True)
    torch.testing.assert_close(
        losses[1], uniform_background_l1_loss(out.foreground, out.opacity, target, mask)
    )


@pytest.mark.parametrize("static", [False, True])
def test_the_surface_colour_holds_for_its_part_of_the_run(static):
    """With `surface_colour_until` 0.2 the colour loss is the surface's before 20% of the run and the rendered
    colour's after, in an ordinary step and in a captured one (which reads the switch from a tensor)."""
    model = small_neus()
    o, d, mask = rays()
    batch = RayBatch(o, d, torch.rand(o.shape[0], 3), mask)

    def rgb_term(until, progress):
        model.config.loss.surface_colour_until = until
        model.set_progress(progress)
        torch.manual_seed(1)
        return model.training_loss(batch, static=static).terms["rgb"]

    surface, composite = rgb_term(1.0, 0.5), rgb_term(0.0, 0.5)
    assert not torch.allclose(surface, composite)
    torch.testing.assert_close(rgb_term(0.2, 0.1), surface)
    torch.testing.assert_close(rgb_term(0.2, 0.3), composite)


def test_surface_colour_settings_are_checked():
    from nsr import checks

    config = get_preset("neus-demo")
    config.model.loss.surface_colour_until = 1.5
    with pytest.raises(ValueError, match=r"model\.loss\.surface-colour-until"):
        checks.validate_config(config)
    config.model.loss.surface_colour_until, config.model.loss.surface_floor = 0.2, 0.0
    with pytest.raises(ValueError, match=r"model\.loss\.surface-floor"):
        checks.validate_config(config)


def test_the_grid_presets_take_the_surface_colour_and_the_banks_the_rendered_one():
    """The NeuS hash-grid presets compare the surface's colour for the first 20% of the run (ahead in four
    pairs of four on the GPU); the filter banks, positional and the CPU demo keep the rendered colour (the banks
    lost on one scene of two, the demo 2 dB in-mask PSNR at 600 steps: RESULTS.md section 4)."""
    for name in ("neus-hashgrid", "neus-hashgrid-fused", "neus-hashgrid-fused-cams"):
        assert get_preset(name).model.loss.surface_colour_until == 0.2
    for name in ("neus-nffb-fused", "neus-stylemod-nffb-fused", "neus-positional", "neus-demo"):
        assert get_preset(name).model.loss.surface_colour_until == 0.0


def test_the_demo_and_the_plain_banks_take_the_uniform_background():
    """`neus-demo` (both seeds of its CPU bar) and the plain filter bank (Spot and the fuze bottle at 120 s on an
    H100) composite inside the masks over a random background in expectation; the hash grid (behind with it on
    both scenes), the unmeasured style bank and positional keep the scene's (RESULTS.md section 4)."""
    for name in ("neus-demo", "neus-nffb", "neus-nffb-fused"):
        assert get_preset(name).model.loss.masked_background == "uniform"
    for name in ("neus-hashgrid", "neus-hashgrid-fused", "neus-stylemod-nffb-fused", "neus-positional"):
        assert get_preset(name).model.loss.masked_background == "scene"
