import json

import numpy as np
import pytest
import torch

from conftest import interrupted, tiny_config
from nsr.data.idr import load_idr_scene
from nsr.engine import Trainer, TrainingError, split_views
from nsr.engine.run import open_run


def test_split_views():
    assert split_views(10, 4) == ([1, 2, 3, 5, 6, 7, 9], [0, 4, 8])
    assert split_views(3, 0) == ([0, 1, 2], [])


@pytest.mark.parametrize("kind", ["demo", "neus-demo"])
def test_a_validation_view_reports_its_chunks_and_renders_the_same(tiny_scene, tmp_path, kind):
    """`Trainer.on_view` (the CLI's bar below the training bar) hears of each chunk of a validation view, and a
    view rendered chunk by chunk for it is the view rendered at once."""
    from nsr.config import get_preset
    from nsr.engine.trainer import render_view

    config = tiny_config(tiny_scene, steps=2)
    config.model = get_preset(kind).model
    scene = load_idr_scene(tiny_scene)
    trainer = Trainer(config, scene, tmp_path / kind)
    trainer.train()
    calls = []
    trainer.on_view = lambda done, total: calls.append((done, total))
    trainer.validate()
    chunks = -(-scene.height * scene.width // trainer.model.eval_chunk_size)
    assert calls == [(i, chunks) for i in range(1, chunks + 1)]
    assert chunks < 3 < -(-scene.height * scene.width // 100)  # below: many chunks
    whole = render_view(trainer.model, scene, 0, chunk=100)
    parts = render_view(trainer.model, scene, 0, chunk=100, progress=lambda done, total: None)
    for name in ("rgb", "opacity", "depth", "normals"):
        torch.testing.assert_close(getattr(parts, name), getattr(whole, name), msg=name)


def test_the_view_bar_closes_when_its_view_is_done():
    from nsr.cli.common import ViewProgress

    bar = ViewProgress()
    bar(1, 3)
    assert bar.bar is not None and bar.bar.n == 1
    bar(3, 3)
    assert bar.bar is None
    bar.close()  # nothing left to close


def test_smoke_train_writes_a_complete_run_folder(tiny_scene, tmp_path):
    config = tiny_config(tiny_scene, steps=4)
    scene = load_idr_scene(tiny_scene)
    seen = []
    trainer = Trainer(config, scene, tmp_path / "run", on_step=seen.append)
    trainer.train()
    run = tmp_path / "run"
    assert [m.step for m in seen] == [1, 2, 3, 4]
    assert all(np.isfinite(m.loss) for m in seen)
    assert (run / "config.yaml").is_file() and (run / "split.json").is_file()
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pt")) == [
        "latest.pt",
        "step_0000002.pt",
        "step_0000004.pt",
    ]
    assert len(list((run / "validation").glob("*.png"))) == 2
    assert list((run / "tensorboard").glob("events.*"))
    assert json.loads((run / "split.json").read_text())["test"] == [0, 4]
    reopened = open_run(run, device="cpu")
    assert reopened.step == 4 and reopened.test_views == [0, 4]
    np.testing.assert_allclose(reopened.scale_mat, scene.scale_mat)
    for a, b in zip(reopened.model.parameters(), trainer.model.parameters()):
        assert torch.equal(a, b)


def test_resume_continues_exactly(tiny_scene, tmp_path):
    scene = load_idr_scene(tiny_scene)
    straight = Trainer(tiny_config(tiny_scene, steps=6), scene, tmp_path / "a")
    straight.train()

    interrupted(Trainer(tiny_config(tiny_scene, steps=6), scene, tmp_path / "b"), at=4)
    second = Trainer(tiny_config(tiny_scene, steps=6), scene, tmp_path / "b")
    assert second.resume() and second.step == 4
    second.train()
    for a, b in zip(straight.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)


def test_periodic_work_paced_by_training_time(tiny_scene, tmp_path):
    # a floor no run of 6 steps reaches: no step checkpoint nor validation view before the end, whose
    # checkpoint is always written, and whose view is rendered when time-paced views skipped it
    config = tiny_config(tiny_scene, steps=6)
    config.checkpoint_every = config.val_every = config.health.keep_good_every = 1
    config.checkpoint_min_seconds = config.val_min_seconds = config.health.keep_good_min_seconds = 1e9
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "run")
    trainer.train()
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.pt"))
    assert checkpoints == ["latest.pt", "step_0000006.pt"]
    assert [p.name for p in (tmp_path / "run" / "validation").glob("*.png")] == ["step_0000006.png"]
    assert trainer._candidate is None  # no copy of the state was taken either

    # the rule itself, on the trainer's clock of training seconds
    trainer.seconds = 100.0
    trainer._last["checkpoint"] = 80.0
    assert not trainer._due("checkpoint", 30.0)
    assert trainer._due("checkpoint", 0.0) and trainer._last["checkpoint"] == 100.0
    trainer.seconds = 130.0
    assert trainer._due("checkpoint", 30.0) and not trainer._due("checkpoint", 30.0)


def test_gpu_presets_pace_their_checkpoints_by_time():
    from nsr.config import get_preset

    for name in ("hashgrid-fused", "nffb-fused", "neus-hashgrid-fused", "hashgrid-fused-cams"):
        config = get_preset(name)
        assert config.checkpoint_min_seconds == config.val_min_seconds == 30.0, name
        assert config.health.keep_good_min_seconds > 0, name
    assert get_preset("demo").checkpoint_min_seconds == 0.0  # CPU presets: by steps only


def test_time_budget_and_snapshots(tiny_scene, tmp_path):
    config = tiny_config(tiny_scene, steps=10**6)
    config.max_seconds = 1e-9
    config.snapshot_seconds = (1e-9,)
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "run")
    trainer.train()
    assert trainer.step == 1
    assert (tmp_path / "run" / "checkpoints" / "snapshot_0s.pt").is_file()


def test_nan_loss_is_a_clear_error(tiny_scene, tmp_path):
    trainer = Trainer(tiny_config(tiny_scene), load_idr_scene(tiny_scene), tmp_path / "run")
    with torch.no_grad():
        trainer.model.sdf_field.layers[-1].bias.fill_(float("nan"))
    with pytest.raises(TrainingError, match="loss became nan at step 0"):
        trainer.train_step()


@pytest.mark.parametrize(
    ("name", "background"), [("dtu_scan24", (0.0, 0.0, 0.0)), ("synthetic_spot_mitsuba", (1.0, 1.0, 1.0))]
)
def test_trains_on_the_real_scenes(shared_data, tmp_path, name, background):
    """A few steps on the shared real scenes (downscaled 8x): finite losses, surface hits, a checkpoint."""
    config = tiny_config(shared_data / name, steps=3)
    config.data.downscale = 8
    config.val_every = 3
    config.model.background = background
    scene = load_idr_scene(config.data.path, downscale=config.data.downscale)
    seen = []
    Trainer(config, scene, tmp_path / "run", on_step=seen.append).train()
    assert all(np.isfinite(m.loss) for m in seen) and max(m.metrics["hit_ratio"] for m in seen) > 0
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()


def test_tf32_follows_each_runs_config(tiny_scene, tmp_path):
    scene = load_idr_scene(tiny_scene)
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        config = tiny_config(tiny_scene, steps=1)
        config.tf32 = True
        Trainer(config, scene, tmp_path / "a")
        assert torch.backends.cuda.matmul.allow_tf32
        Trainer(tiny_config(tiny_scene, steps=1), scene, tmp_path / "b")  # the default: fp32 products
        assert not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
