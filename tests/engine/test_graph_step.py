"""The training step captured whole as a CUDA graph (`cuda_graph_step`): the same training as ordinary
steps on a GPU, also with trained cameras; the step's body run eagerly on a CPU trains as ordinary steps;
ordinary steps (and a saved reason) where it does not apply; checkpoints that resume anywhere."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from tests.conftest import tiny_config

import nsr.engine.pockets as pockets_module
import nsr.engine.trainer as trainer_module
from nsr.cameras.refine import CameraRefinement
from nsr.config import get_preset
from nsr.config.train import PocketFillConfig
from nsr.data.idr import load_idr_scene
from nsr.encodings import HashGridConfig
from nsr.engine.graph_step import (
    GraphedStep,
    portable_optimizer_state,
    set_learning_rate,
    tensor_learning_rates,
)
from nsr.engine.trainer import RayBatcher, Trainer


def cams_config(scene, steps: int):
    """A tiny run with trained cameras (3 degrees / 3% of pose noise) frozen for the first half of the run, and
    a camera guard that observes every step and never checks."""
    config = tiny_config(scene, steps=steps)
    config.cameras.trainable = True
    config.cameras.pose_noise = "3,0.03,2"
    config.cameras.lr = 1e-2
    config.cameras.warmup, config.cameras.warmup_until = "frozen", 0.5
    config.camera_guard.every, config.camera_guard.start = 0.5, 1.0
    config.model.tracer.mode = "static"  # what `auto` picks on CUDA; the compact tracer has no static step
    config.val_every = 0
    config.tensorboard = False
    return config


def build_graphed_step(trainer: Trainer, monkeypatch, step_class=GraphedStep):
    """What `Trainer._build_graphed_step` gives on CUDA, built on a CPU (as `step_class`)."""
    monkeypatch.setattr(trainer_module, "GraphedStep", step_class)
    device, trainer.device = trainer.device, torch.device("cuda")  # only its check reads the device
    try:
        return trainer._build_graphed_step()
    finally:
        trainer.device = device


class EagerStep(GraphedStep):
    """The captured step's body, run eagerly at every call (a CPU cannot capture)."""

    def __call__(self, view, pix, moving=False, inputs=()):
        self._zero_grad()
        values, errors = self._step(view, pix, moving, inputs)
        return values.tolist(), errors


def test_ordinary_steps_on_a_cpu_and_with_trained_cameras(tiny_scene, tmp_path, caplog):
    config = cams_config(tiny_scene, steps=4)
    config.cuda_graph_step = True
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "cpu")
    assert trainer.graphed_step is None  # CUDA only
    trainer.train_step()
    assert trainer.step == 1


def test_trained_cameras_are_captured_and_the_pocket_fill_unless_told_not_to(
    tiny_scene, tmp_path, monkeypatch, caplog
):
    config = cams_config(tiny_scene, steps=4)
    config.cuda_graph_step = True
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "cams")
    step = build_graphed_step(trainer, monkeypatch)
    assert step is not None and step.cameras.module is trainer.cameras
    assert step.cameras.optimizer is trainer.camera_optimizer
    assert step.cameras.views.tolist() == trainer.train_views
    config.pockets.every = 0.5
    assert config.pockets.in_graph  # the default
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "pockets_in_graph")
    step = build_graphed_step(trainer, monkeypatch)
    assert step.extra.name == "pocket" and step.extra.weight == config.pockets.weight
    config.pockets.in_graph = False
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "pockets")
    with caplog.at_level("INFO", logger="nsr.engine"):
        assert build_graphed_step(trainer, monkeypatch) is None
    assert "cuda_graph_step off: the pocket fill runs ordinary steps" in caplog.text
    config.pockets.every, config.model.tracer.mode = 0.0, "compact"
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "compact")
    with caplog.at_level("INFO", logger="nsr.engine"):
        assert build_graphed_step(trainer, monkeypatch) is None
    assert "its tracer's mode is compact" in caplog.text


def test_the_step_body_with_the_pocket_fill_trains_as_ordinary_steps(tiny_scene, tmp_path, monkeypatch):
    """`pockets.in_graph`, the captured step's body run eagerly (as above) with trained cameras: the same
    losses and pocket terms as ordinary steps, through refreshes at 25 / 50 / 75% of the run (every 7th
    candidate kept as a pocket, so that a tiny run has some; none before the first refresh)."""
    monkeypatch.setattr(
        pockets_module, "hidden_pockets", lambda sdf, views, points, *rest: torch.arange(len(points)) % 7 == 0
    )
    runs = {}
    for graphed in (False, True):
        config = cams_config(tiny_scene, steps=8)
        config.cuda_graph_step = True
        config.pockets = PocketFillConfig(
            every=0.25, start=0.2, samples=4096, batch=64, max_side=24, in_graph=True
        )
        trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / f"run{graphed}")
        if graphed:
            trainer.graphed_step = build_graphed_step(trainer, monkeypatch, EagerStep)
        metrics = [trainer.train_step() for _ in range(8)]
        runs[graphed] = [m.loss for m in metrics], [m.terms["pocket"] for m in metrics]
    (losses, pocket), (ordinary_losses, ordinary_pocket) = runs[True], runs[False]
    assert ordinary_pocket[:2] == [0.0, 0.0] and all(p > 0 for p in ordinary_pocket[2:])
    torch.testing.assert_close(torch.tensor(pocket), torch.tensor(ordinary_pocket), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(ordinary_losses), rtol=1e-5, atol=1e-7)


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


def test_the_step_body_trains_as_ordinary_steps_with_trained_cameras(tiny_scene, tmp_path, monkeypatch):
    """The captured step's body, run eagerly through the trainer's graphed path (indices drawn, rays made from
    the cameras inside the step, the guard fed the step's errors): the same losses, cameras and running errors
    as ordinary steps; the cameras and their Adam untouched while frozen (two steps), moving after."""
    runs = {}
    for graphed in (False, True):
        config = cams_config(tiny_scene, steps=4)
        config.cuda_graph_step = True  # a CPU takes ordinary steps unless given the step below
        trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / f"run{graphed}")
        if graphed:
            trainer.graphed_step = build_graphed_step(trainer, monkeypatch, EagerStep)
            assert isinstance(trainer.graphed_step, EagerStep)
        losses, moved = [], []
        for step in range(4):
            losses.append(trainer.train_step().loss)
            moved.append(bool(trainer.cameras.correction.abs().sum() > 0))
            if step == 1:
                assert trainer.cameras.correction.grad is None and not trainer.camera_optimizer.state
        assert trainer.camera_optimizer.state[trainer.cameras.correction]["step"] == 2
        runs[graphed] = losses, moved, trainer.cameras.correction.detach(), trainer.camera_guard.sums
    (losses, moved, correction, sums), ordinary = runs[True], runs[False]
    assert moved == ordinary[1] == [False, False, True, True]
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(ordinary[0]), rtol=1e-5, atol=1e-7)
    # Adam's steps are about lr (1e-2) whatever the gradient's size: a small component's rounding shows more.
    torch.testing.assert_close(correction, ordinary[2], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sums, ordinary[3], rtol=1e-5, atol=1e-7)
    assert sums.sum() > 0


def test_a_model_without_a_static_loss_is_refused(monkeypatch):
    model = get_preset("neus-demo").model.build()
    monkeypatch.setattr(type(model), "graphable", False)
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="no static loss"):
        GraphedStep(model, optimizer, rays=None)


@pytest.mark.parametrize("mode", ["auto", "static", "compact"])
def test_idr_has_a_static_step_only_with_the_static_tracer(mode):
    """The compact tracer indexes the rays still tracing (a host synchronisation, shapes that change): a
    step with it cannot be captured, so the trainer runs ordinary steps instead of failing in the capture."""
    config = get_preset("hashgrid-fused").model
    config.tracer.mode = mode
    assert config.build().graphable == (mode != "compact")


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
        # equal sample counts, as in the GPU presets: the trace's two dense searches in one SDF call
        config.model.tracer.mask_samples = config.model.tracer.num_samples
    else:
        config = get_preset("neus-demo")
        config.data.path, config.data.holdout_every = scene, 4
        config.steps, config.rays_per_batch, config.log_every = steps, 64, 1
        config.checkpoint_every = config.val_every = steps
        renderer = config.model.renderer
        renderer.num_samples, renderer.num_importance, renderer.up_sample_steps = 16, 16, 2
        renderer.occupancy.resolution, renderer.occupancy.update_every = 16, 4
        config.model.loss.curvature_weight = 0.01
        if kind != "neus":  # the colour loss's options: the surface's colour until 30%, then a background
            background = kind.removeprefix("neus-")
            config.model.loss.surface_colour_until, config.model.loss.masked_background = 0.3, background
    config.device = "cuda"
    config.model.sdf.gradient = "finite_difference"
    config.model.sdf.encoding = HashGridConfig(
        num_levels=4, log2_table_size=12, finest_resolution=64, start_levels=3, unlock_every=0.5
    )
    return config


@contextmanager
def fixed_random_numbers() -> Iterator[None]:
    """Within the block, the renderers' random depths, the eikonal points and the occupancy grid's jitter are
    fixed numbers, so that graphed and ordinary steps draw the same."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "rand", lambda *size, device=None, **kw: torch.full(size, 0.5, device=device))
        patch.setattr(torch, "rand_like", lambda t, **kw: torch.full_like(t, 0.5))
        patch.setattr(torch.Tensor, "uniform_", lambda t, a=0.0, b=1.0: t.fill_(0.3 * a + 0.7 * b))
        yield


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["idr", "neus", "neus-random", "neus-uniform"])
def test_graphed_steps_train_as_ordinary_steps(tiny_scene, tmp_path, kind):
    """Same rays, same random numbers (the renderers' random depths, the eikonal points and the occupancy
    grid's jitter fixed): the losses of graphed and ordinary steps agree step by step, through a capture and a
    re-capture when a grid level unlocks, and (NeuS) through the occupancy grid's in-place updates."""
    losses, captures = {}, 0
    for graphed in (False, True):
        config = small_config(tiny_scene, kind, steps=12)
        config.cuda_graph_step = graphed
        trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / f"run{graphed}")
        assert (trainer.graphed_step is not None) == graphed
        with fixed_random_numbers():
            losses[graphed] = [trainer.train_step().loss for _ in range(12)]
        if graphed:
            captures = trainer.graphed_step.captures
    assert captures == 2  # after the warm-up steps, and when the fourth level unlocked half-way
    torch.testing.assert_close(torch.tensor(losses[True]), torch.tensor(losses[False]), rtol=2e-3, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graphed_steps_with_trained_cameras_train_as_ordinary_steps(tiny_scene, tmp_path):
    """Trained cameras inside the graph (same random numbers as `test_graphed_steps_train_as_ordinary_steps`):
    the same losses step by step, the same cameras at the end, as many camera Adam steps as steps with moving
    cameras (its moments created by an eager step, not re-zeroed by every replay) and the same running errors
    of the camera guard (read from the graph's output), through the captures after the warm-up steps, when
    the cameras start to move and when a grid level unlocks."""
    steps = 12
    runs = {}
    for graphed in (False, True):
        config = small_config(tiny_scene, "idr", steps=steps)
        config.cuda_graph_step = graphed
        config.cameras.trainable = True
        config.cameras.pose_noise = "1,0.01"
        config.cameras.lr = 1e-3
        config.cameras.warmup, config.cameras.warmup_until = "frozen", 0.25  # moving from step 3
        config.camera_guard.every, config.camera_guard.start = 0.5, 1.0  # observes every step, never checks
        trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / f"run{graphed}")
        assert (trainer.graphed_step is not None) == graphed
        assert trainer.camera_guard is not None
        losses, keys = [], []
        with fixed_random_numbers():
            for _ in range(steps):
                moving = config.cameras.lr_factor_at(trainer.progress()) > 0
                losses.append(trainer.train_step().loss)
                keys.append((trainer.model.schedule_key(), moving))
        adam_steps = int(trainer.camera_optimizer.state[trainer.cameras.correction]["step"])
        captures = trainer.graphed_step.captures if graphed else 0
        correction = trainer.cameras.correction.detach().cpu()
        runs[graphed] = losses, keys, correction, trainer.camera_guard.sums.cpu(), adam_steps, captures
    (losses, keys, correction, sums, adam_steps, captures), ordinary = runs[True], runs[False]
    # The capture keys of the run: captured after the two warm-up steps, then again on the second step of
    # every new key (its first runs eagerly); each key lasts long enough to be captured.
    changes = [i for i in range(1, steps) if keys[i] != keys[i - 1]]
    assert len(changes) == 2, keys  # the cameras start to move, then the fourth level unlocks
    assert changes[0] >= 3 and all(b - a >= 2 for a, b in zip(changes, [*changes[1:], steps]))
    assert captures == 1 + len(changes)
    assert adam_steps == ordinary[4] == sum(moving for _, moving in keys)
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(ordinary[0]), rtol=2e-3, atol=1e-5)
    assert correction.abs().max() > 5e-4  # the cameras moved (lr 1e-3, nine steps)
    # Adam's steps are about lr whatever the gradient's size: a small component's rounding shows more.
    torch.testing.assert_close(correction, ordinary[2], rtol=1e-2, atol=1e-4)
    torch.testing.assert_close(sums, ordinary[3], rtol=1e-2, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_pocket_fill_in_the_graph_trains_as_in_ordinary_steps(tiny_scene, tmp_path, monkeypatch):
    """`pockets.in_graph`: the fill's term computed inside the captured step from points drawn on the host
    (zeros and a weight of 0 before the first refresh) gives the losses and the pocket terms of ordinary
    steps, with trained cameras, through refreshes at 25 / 50 / 75% of the run (every 7th candidate kept as a
    pocket, so that a tiny run has some) and the re-capture when a grid level unlocks."""
    steps = 12
    monkeypatch.setattr(
        pockets_module,
        "hidden_pockets",
        lambda sdf, views, points, *rest: torch.arange(len(points), device=points.device) % 7 == 0,
    )
    runs = {}
    for graphed in (False, True):
        config = small_config(tiny_scene, "idr", steps=steps)
        config.cuda_graph_step = graphed
        config.cameras.trainable, config.cameras.pose_noise, config.cameras.lr = True, "1,0.01", 1e-3
        config.camera_guard.every = 0.0
        config.pockets = PocketFillConfig(
            every=0.25, start=0.2, samples=4096, batch=64, max_side=24, in_graph=True
        )
        trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / f"run{graphed}")
        assert (trainer.graphed_step is not None) == graphed
        with fixed_random_numbers():
            metrics = [trainer.train_step() for _ in range(steps)]
        runs[graphed] = [m.loss for m in metrics], [m.terms["pocket"] for m in metrics]
        if graphed:
            assert trainer.graphed_step.captures >= 2
    (losses, pocket), (ordinary_losses, ordinary_pocket) = runs[True], runs[False]
    assert ordinary_pocket[:3] == [0.0, 0.0, 0.0] and all(p > 0 for p in ordinary_pocket[3:])
    torch.testing.assert_close(torch.tensor(pocket), torch.tensor(ordinary_pocket), rtol=2e-3, atol=1e-6)
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(ordinary_losses), rtol=2e-3, atol=1e-5)
