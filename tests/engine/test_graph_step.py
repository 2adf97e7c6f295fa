"""The training step captured whole as a CUDA graph (`cuda_graph_step`): the same training as ordinary
steps on a GPU; ordinary steps (and a saved reason) where it does not apply; checkpoints that resume
anywhere."""

import pytest
import torch
from tests.conftest import tiny_config

from nsr.cameras.refine import CameraRefinement
from nsr.config import get_preset
from nsr.data.idr import load_idr_scene
from nsr.encodings import HashGridConfig
from nsr.engine.graph_step import (
    GraphedStep,
    portable_optimizer_state,
    set_learning_rate,
    tensor_learning_rates,
)
from nsr.engine.trainer import RayBatcher, Trainer


def test_ordinary_steps_on_a_cpu_and_with_trained_cameras(tiny_scene, tmp_path, caplog):
    config = tiny_config(tiny_scene)
    config.cuda_graph_step = True
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "cpu")
    assert trainer.graphed_step is None  # CUDA only
    trainer.train_step()
    assert trainer.step == 1


def test_drawn_indices_gather_the_rays_that_sample_draws(tiny_scene):
    """`draw` then `gather` is `sample`: the same rays from the same random numbers, with the scene's poses
    and with trained ones (whose gradients the rays carry)."""
    scene = load_idr_scene(tiny_scene)
    cameras = CameraRefinement(scene.c2w)
    with torch.no_grad():
        cameras.correction.normal_(0.0, 0.02, generator=torch.Generator().manual_seed(5))
    for poses in (None, cameras()):
        sampled = RayBatcher(scene, torch.device("cpu"), torch.Generator().manual_seed(3))
        drawn = RayBatcher(scene, torch.device("cpu"), torch.Generator().manual_seed(3))
        for _ in range(2):  # and the random stream goes on the same
            view, *rays = sampled.sample(50, poses)
            indices = drawn.draw(50)
            batch = drawn.gather(*indices, poses)
            assert torch.equal(indices[0], view)
            for a, b in zip(rays, vars(batch).values(), strict=True):
                assert torch.equal(a, b)
        assert batch.origins.requires_grad == (poses is not None)


def test_a_model_without_a_static_loss_is_refused(monkeypatch):
    model = get_preset("neus-demo").model.build()
    monkeypatch.setattr(type(model), "graphable", False)
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="no static loss"):
        GraphedStep(model, optimizer)


def test_learning_rates_in_tensors_are_set_in_place_and_saved_as_numbers():
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer = torch.optim.Adam(params, lr=0.1)
    tensor_learning_rates(optimizer)
    group = optimizer.param_groups[0]
    storage = group["lr"]
    assert isinstance(storage, torch.Tensor) and group["capturable"]
    set_learning_rate(group, 0.03)
    assert group["lr"] is storage and storage.item() == pytest.approx(0.03)
    saved = portable_optimizer_state(optimizer.state_dict())
    assert (
        saved["param_groups"][0]["lr"] == pytest.approx(0.03) and not saved["param_groups"][0]["capturable"]
    )
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor)  # the live optimiser is untouched
    fresh = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], lr=1.0)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == pytest.approx(0.03)


def small_config(scene, kind: str, steps: int):
    """A tiny run of either renderer with a small fused hash grid (finite-difference gradients) whose
    fourth level unlocks half-way (so the step is captured twice)."""
    if kind == "idr":
        config = tiny_config(scene, steps=steps)
        config.model.tracer.mode = "static"
    else:
        config = get_preset("neus-demo")
        config.data.path, config.data.holdout_every = scene, 4
        config.steps, config.rays_per_batch, config.log_every = steps, 64, 1
        config.checkpoint_every = config.val_every = steps
        renderer = config.model.renderer
        renderer.num_samples, renderer.num_importance, renderer.up_sample_steps = 16, 16, 2
        renderer.occupancy.resolution, renderer.occupancy.update_every = 16, 4
        config.model.loss.curvature_weight = 0.01
    config.device = "cuda"
    config.model.sdf.gradient = "finite_difference"
    config.model.sdf.encoding = HashGridConfig(
        num_levels=4, log2_table_size=12, finest_resolution=64, start_levels=3, unlock_every=0.5
    )
    return config


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["idr", "neus"])
def test_graphed_steps_train_as_ordinary_steps(tiny_scene, tmp_path, monkeypatch, kind):
    """Same rays, same random numbers (the renderers' random depths, the eikonal points and the occupancy
    grid's jitter fixed): the losses of graphed and ordinary steps agree step by step, through a capture and a
    re-capture when a grid level unlocks, and (NeuS) through the occupancy grid's in-place updates."""
    rand, rand_like, uniform = torch.rand, torch.rand_like, torch.Tensor.uniform_
    losses, captures = {}, 0
    for graphed in (False, True):
        config = small_config(tiny_scene, kind, steps=12)
        config.cuda_graph_step = graphed
        trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / f"run{graphed}")
        assert (trainer.graphed_step is not None) == graphed
        monkeypatch.setattr(
            torch, "rand", lambda *size, device=None, **kw: torch.full(size, 0.5, device=device)
        )
        monkeypatch.setattr(torch, "rand_like", lambda t, **kw: torch.full_like(t, 0.5))
        monkeypatch.setattr(torch.Tensor, "uniform_", lambda t, a=0.0, b=1.0: t.fill_(0.3 * a + 0.7 * b))
        losses[graphed] = [trainer.train_step().loss for _ in range(12)]
        monkeypatch.setattr(torch, "rand", rand)
        monkeypatch.setattr(torch, "rand_like", rand_like)
        monkeypatch.setattr(torch.Tensor, "uniform_", uniform)
        if graphed:
            captures = trainer.graphed_step.captures
    assert captures == 2  # after the warm-up steps, and when the fourth level unlocked half-way
    torch.testing.assert_close(torch.tensor(losses[True]), torch.tensor(losses[False]), rtol=2e-3, atol=1e-5)
