"""The pieces that keep a run's work safe: verified checkpoints, pruning, the run-folder lock, divergence
checks, interrupts, resuming with changes."""

import os
import signal

import numpy as np
import pytest
import torch

from conftest import tiny_config
from nsr.checks import InvalidValue, validate_config
from nsr.config import get_preset
from nsr.config.train import HealthConfig, resume_conflicts
from nsr.data.idr import load_idr_scene
from nsr.engine import CheckpointError, RunError, Trainer, TrainingError, TrainingInterrupted
from nsr.engine.checkpoint import (
    load_checkpoint,
    load_newest,
    prune_step_checkpoints,
    save_atomic,
    step_checkpoints,
)
from nsr.engine.health import HealthMonitor
from nsr.engine.lock import LOCK_FILE, RunLock
from nsr.engine.run import open_run
from nsr.engine.train_log import TRAIN_LOG, last_logged, read_train_log


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------------------------------------- checkpoints
def test_checksum_catches_a_flipped_byte_and_truncation(tmp_path):
    payload = {"step": 3, "model": {"w": torch.arange(1000.0)}, "rng": (1, (2, 3), None), "x": np.ones(4)}
    path = tmp_path / "c.pt"
    save_atomic(payload, path)
    state = load_checkpoint(path)
    assert state["step"] == 3 and state["checksum"].startswith("sha256:")
    data = bytearray(path.read_bytes())
    offset = data.index(np.float32(500.0).tobytes())  # inside the tensor's bytes: torch.load reads it fine
    data[offset] ^= 0x01
    (tmp_path / "flipped.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        load_checkpoint(tmp_path / "flipped.pt")
    (tmp_path / "short.pt").write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        load_checkpoint(tmp_path / "short.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pt"):
        load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_newest_loading_checkpoint_and_pruning(tmp_path):
    for step in (1, 2, 3, 4):
        save_atomic({"step": step, "model": {}}, tmp_path / f"step_{step:07d}.pt")
    (tmp_path / "latest.pt").write_bytes(b"garbage")
    (tmp_path / "step_0000004.pt").write_bytes((tmp_path / "step_0000004.pt").read_bytes()[:100])
    path, state, problems = load_newest(tmp_path)
    assert path.name == "step_0000003.pt" and state["step"] == 3
    assert len(problems) == 2 and "latest.pt" in problems[0] and "step_0000004.pt" in problems[1]
    assert [p.name for p in prune_step_checkpoints(tmp_path, 2)] == ["step_0000001.pt", "step_0000002.pt"]
    assert [s for s, _ in step_checkpoints(tmp_path)] == [3, 4]
    assert prune_step_checkpoints(tmp_path, 0) == []  # 0 keeps all


def test_checkpoints_are_pruned_linked_and_hold_the_config(tiny_scene, tmp_path, one_torch_thread):
    config = tiny_config(tiny_scene, steps=9)
    config.checkpoint_every, config.keep_checkpoints, config.val_every = 1, 3, 0
    config.snapshot_seconds = (1e-9,)
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "run")
    trainer.train()
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.glob("*.pt")) == [
        "latest.pt",
        "snapshot_0s.pt",
        "step_0000007.pt",
        "step_0000008.pt",
        "step_0000009.pt",
    ]
    assert os.path.samefile(folder / "latest.pt", folder / "step_0000009.pt")  # a link: no second copy
    state = load_checkpoint(folder / "latest.pt")
    assert state["config"]["kind"] == "train" and state["config"]["config"]["steps"] == 9
    assert not (tmp_path / "run" / LOCK_FILE).exists()  # released


def test_a_lost_config_is_recovered_from_the_checkpoint(tiny_scene, tmp_path, one_torch_thread):
    config = tiny_config(tiny_scene, steps=2)
    config.model.sdf.hidden_dim = 40  # not the preset's: a default config would not load these weights
    Trainer(config, load_idr_scene(tiny_scene), tmp_path / "run").train()
    (tmp_path / "run" / "config.yaml").unlink()
    run = open_run(tmp_path / "run", device="cpu")
    assert run.step == 2 and run.config.model.sdf.hidden_dim == 40


def test_a_checkpoint_of_another_model_is_refused(tiny_scene, tmp_path, one_torch_thread):
    scene = load_idr_scene(tiny_scene)
    Trainer(tiny_config(tiny_scene, steps=2), scene, tmp_path / "run").train()
    other = tiny_config(tiny_scene, steps=4)
    other.model.sdf.hidden_dim = 40
    with pytest.raises(RunError, match=r"--model\.sdf\.hidden-dim 48, not 40"):
        Trainer(other, scene, tmp_path / "run").resume()


def test_resume_conflicts_name_what_a_run_cannot_change(tiny_scene):
    saved = tiny_config(tiny_scene)
    new = tiny_config(tiny_scene)
    new.steps, new.optim.lr, new.device, new.checkpoint_every = 99, 1e-5, "cpu", 7
    new.tf32 = True  # how the products are computed, not what the model is
    assert resume_conflicts(saved, new) == []
    compiled, eager = get_preset("neus-nffb-fused"), get_preset("neus-nffb-fused")
    eager.model.sdf.encoding.compile_training = False
    eager.model.colour_init = "grey"  # only where a new run starts: a run from before the option resumes
    assert compiled.model.sdf.encoding.compile_training and resume_conflicts(compiled, eager) == []
    new.model.sdf.hidden_dim, new.seed, new.data.holdout_every = 64, 3, 2
    assert [key for key, _, _ in resume_conflicts(saved, new)] == [
        "model.sdf.hidden_dim",
        "data.holdout_every",
        "seed",
    ]


# ---------------------------------------------------------------------------------------------- lock
def test_the_lock_is_exclusive_reentrant_and_released(tmp_path):
    run = tmp_path / "run"
    with RunLock(run) as lock:
        assert (run / LOCK_FILE).is_file()
        with RunLock(run):  # the same process again: nested
            pass
        assert (run / LOCK_FILE).is_file() and lock.took_over is None
    assert not (run / LOCK_FILE).exists()


def test_a_stale_lock_is_taken_over(tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text('{"pid": 999999999, "host": "gone", "started": 0}')
    with caplog.at_level("INFO", logger="nsr"), RunLock(run) as lock:
        assert lock.took_over["pid"] == 999999999
    assert "taking over the lock of pid 999999999" in caplog.text


# ---------------------------------------------------------------------------------------------- health
def test_health_monitor_sees_a_loss_far_above_its_level():
    monitor = HealthMonitor(HealthConfig(patience=5), "hit_ratio")
    for step in range(1, 21):
        assert monitor.observe(step, 1.0 / step, {"hit_ratio": 0.9}).suspect is False
    verdicts = [monitor.observe(step, 1e6, {"hit_ratio": 0.9}) for step in range(21, 26)]
    assert [v.suspect for v in verdicts] == [True] * 5
    assert verdicts[-1].diverged.startswith("the loss (1e+06) above 20x its running level")
    assert verdicts[-1].diverged.endswith("for 5 steps, since step 21")


def test_health_monitor_sees_coverage_collapse_and_forgives_a_blip():
    monitor = HealthMonitor(HealthConfig(patience=30), "opacity")
    for step in range(1, 11):
        monitor.observe(step, 0.1, {"opacity": 0.5})
    assert monitor.observe(11, 5.0, {"opacity": 0.5}).suspect  # one noisy batch
    for step in range(12, 22):
        monitor.observe(step, 0.1, {"opacity": 0.5})
    assert monitor.onset is None  # 10 good steps end a suspicion
    verdicts = [monitor.observe(step, 0.1, {"opacity": 0.0}) for step in range(22, 150)]
    diverged = next(v.diverged for v in verdicts if v.diverged)
    assert "the opacity" in diverged and "below 0.02 of its peak" in diverged


def test_a_surface_that_grows_back_early_is_not_a_divergence():
    """The coverage rule alone waits `coverage_patience` of the run as well as `patience` steps: the shape of
    a NeuS bank run on Spot (CPU, seed 2: opacity 0 from step 15 to 153 of 1000, then back), which `patience`
    alone stopped; a surface that stays gone still stops the run, and the loss rule keeps its patience. The
    user hears when the surface vanishes and when it is back, and the steps without it are counted."""

    def run(opacities, losses=None, steps=1000):
        monitor = HealthMonitor(HealthConfig(), "opacity")
        notes = []
        for step, opacity in enumerate(opacities, start=1):
            loss = 0.1 if losses is None else losses[step - 1]
            verdict = monitor.observe(step, loss, {"opacity": opacity}, progress=step / steps)
            notes += [verdict.note] if verdict.note else []
            if verdict.diverged:
                return step, verdict.diverged
        return None, (monitor, notes)

    regrows = [0.9] * 14 + [0.0] * 139 + [0.6] * 47
    step, (monitor, notes) = run(regrows)
    assert step is None and 90 < monitor.vanished_steps < 139  # the running coverage: late by ~37 steps
    assert len(notes) == 2
    assert notes[0].endswith(
        "the opacity fell below 0.02 of its peak; the run stops if it stays there for 0.25 of the run"
    )
    assert notes[1].startswith("step 154: the opacity is back") and notes[1].endswith(
        f"after {monitor.vanished_steps} steps"
    )
    assert run(regrows, steps=300)[0] is not None  # 139 steps are 46% of a 300-step run: gone for good
    stays_gone = [0.9] * 14 + [0.0] * 400
    step, diverged = run(stays_gone)
    onset = int(diverged.rsplit("since step ", 1)[1])  # the running coverage falls below 2% of its peak
    assert 14 < onset < 14 + 50 and step == onset + 250 and "below 0.02 of its peak" in diverged
    exploding = [0.9] * 400
    losses = [0.1] * 20 + [1e6] * 380
    step, diverged = run(exploding, losses)
    assert step == 20 + 50 and diverged.startswith("the loss")
    monitor = HealthMonitor(HealthConfig(coverage_patience=0.0), "opacity")  # off: `patience` steps alone
    verdicts = [monitor.observe(k, 0.1, {"opacity": o}, k / 1000) for k, o in enumerate(regrows, start=1)]
    assert any(v.diverged for v in verdicts)


def test_health_monitor_parameters():
    monitor = HealthMonitor(HealthConfig(max_parameter=100.0), None)
    assert monitor.check_parameters(3, [torch.ones(3)]).diverged is None
    assert "magnitude 1e+03" in monitor.check_parameters(4, [torch.full((2,), -1e3)]).diverged
    assert "non-finite" in monitor.check_parameters(5, [torch.tensor([1.0, float("nan")])]).diverged


def test_a_diverging_run_stops_and_keeps_the_last_good_state(tiny_scene, tmp_path, one_torch_thread):
    config = tiny_config(tiny_scene, steps=200)
    config.checkpoint_every, config.val_every, config.tensorboard = 1, 0, False
    config.health.patience, config.health.keep_good_every = 10, 5
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "run")
    trainer.prepare_run_dir()
    # Train well for 20 steps, then turn the learning rate up 1e5 times: the run diverges.
    for _ in range(20):
        trainer.train_step()
    trainer.save_checkpoint()
    trainer.config.optim.lr *= 1e5
    for group in trainer.optimizer.param_groups:
        group["initial_lr"] *= 1e5
    with pytest.raises(
        TrainingError, match=r"training diverged at step \d+: .* since step \d+; .*latest.pt is step"
    ):
        trainer.train()
    onset = trainer.health.onset
    latest = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert 20 <= latest["step"] < onset
    assert all(torch.isfinite(v).all() for v in latest["model"].values())
    assert all(step <= latest["step"] for step, _ in step_checkpoints(tmp_path / "run" / "checkpoints"))


def test_a_non_finite_model_is_never_checkpointed(tiny_scene, tmp_path, one_torch_thread):
    trainer = Trainer(tiny_config(tiny_scene), load_idr_scene(tiny_scene), tmp_path / "run")
    with torch.no_grad():
        trainer.model.sdf_field.layers[-1].bias.fill_(float("inf"))
    with pytest.raises(TrainingError, match="parameters became non-finite"):
        trainer.save_checkpoint()
    assert not list((tmp_path / "run" / "checkpoints").glob("step_*.pt"))


def test_a_step_that_fails_on_non_finite_parameters_is_a_divergence(tiny_scene, tmp_path, one_torch_thread):
    trainer = Trainer(tiny_config(tiny_scene, steps=3), load_idr_scene(tiny_scene), tmp_path / "run")

    def fails(batch):  # as NeuS's BCE does on a NaN opacity
        raise RuntimeError("all elements of input should be between 0 and 1")

    trainer.model.training_loss = fails
    with pytest.raises(RuntimeError, match="between 0 and 1"):  # finite parameters: a bug, raised as it is
        trainer.train()
    with torch.no_grad():
        trainer.model.sdf_field.layers[0].bias.fill_(float("nan"))
    with pytest.raises(TrainingError, match="parameters became non-finite"):
        trainer.train()
    assert not list((tmp_path / "run" / "checkpoints").glob("*.pt"))  # nothing non-finite was written


# ---------------------------------------------------------------------------------------------- interrupts
def test_sigint_saves_the_step_and_resume_is_exact(tiny_scene, tmp_path, one_torch_thread):
    scene = load_idr_scene(tiny_scene)
    config = tiny_config(tiny_scene, steps=8)
    config.checkpoint_every, config.val_every = 100, 0
    straight = Trainer(config, scene, tmp_path / "straight")
    straight.train()

    def interrupt_at_5(m):
        if m.step == 5:
            os.kill(os.getpid(), signal.SIGINT)

    config = tiny_config(tiny_scene, steps=8)
    config.checkpoint_every, config.val_every = 100, 0
    # the handler the process had (SIG_IGN where the tests run as a background job of a non-interactive shell)
    handler = signal.getsignal(signal.SIGINT)
    first = Trainer(config, scene, tmp_path / "run", on_step=interrupt_at_5)
    with pytest.raises(TrainingInterrupted) as info:
        first.train()
    assert info.value.step == 5 and info.value.checkpoint.name == "step_0000005.pt"
    assert info.value.exit_code == 130
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["step"] == 5
    assert signal.getsignal(signal.SIGINT) is handler  # handlers restored
    second = Trainer(tiny_config(tiny_scene, steps=8), scene, tmp_path / "run")
    second.config.checkpoint_every, second.config.val_every = 100, 0
    assert second.resume() and second.step == 5
    second.train()
    assert _same(_params(straight.model), _params(second.model))


def test_resume_from_an_earlier_checkpoint_supersedes_the_later_ones(tiny_scene, tmp_path, one_torch_thread):
    scene = load_idr_scene(tiny_scene)
    straight = Trainer(tiny_config(tiny_scene, steps=6), scene, tmp_path / "a")
    straight.train()
    Trainer(tiny_config(tiny_scene, steps=6), scene, tmp_path / "b").train()
    folder = tmp_path / "b" / "checkpoints"
    again = Trainer(tiny_config(tiny_scene, steps=6), scene, tmp_path / "b")
    again.resume(folder / "step_0000002.pt")
    assert again.step == 2 and [s for s, _ in step_checkpoints(folder)] == [2]
    assert sorted(p.name for p in (folder / "superseded").iterdir()) == ["step_0000004.pt", "step_0000006.pt"]
    again.train()
    assert _same(_params(straight.model), _params(again.model))


def test_the_train_log_holds_the_curves_of_the_run_the_checkpoints_hold(
    tiny_scene, tmp_path, one_torch_thread
):
    scene = load_idr_scene(tiny_scene)
    config = tiny_config(tiny_scene, steps=6)
    config.log_every, config.tensorboard = 2, False
    Trainer(config, scene, tmp_path / "run").train()
    log_file = tmp_path / "run" / TRAIN_LOG
    rows = read_train_log(log_file)
    assert [r["step"] for r in rows] == [1, 2, 4, 6]
    assert all({"seconds", "loss", "lr", "rgb", "eikonal", "psnr"} <= set(r) for r in rows)
    assert all(isinstance(r["loss"], float) and r["loss"] > 0 for r in rows)
    assert rows[-1]["seconds"] >= rows[0]["seconds"]

    with log_file.open("a") as f:  # a line cut short by a killed process
        f.write('{"step": 8, "loss"')
    again = Trainer(config, scene, tmp_path / "run")
    again.resume(tmp_path / "run" / "checkpoints" / "step_0000002.pt")
    again.train()
    resumed = read_train_log(log_file)
    assert [r["step"] for r in resumed] == [1, 2, 4, 6]  # 4 and 6 of the abandoned continuation replaced
    assert resumed[:2] == rows[:2]

    config.steps, config.log_every = 9, 4  # the last step is logged too, the curves' end
    longer = Trainer(config, scene, tmp_path / "run")
    longer.resume()
    longer.train()
    assert [r["step"] for r in read_train_log(log_file)] == [1, 2, 4, 6, 8, 9]
    assert last_logged(tmp_path / "run")["step"] == 9


def test_invalid_values_name_their_flag(tiny_scene):
    config = tiny_config(tiny_scene)
    config.model.sdf.encoding.num_frequencies = -1
    with pytest.raises(
        InvalidValue, match=r"^--model\.sdf\.encoding\.num-frequencies -1: must be an integer >= 0"
    ):
        validate_config(config)
    config = tiny_config(tiny_scene)
    config.optim.lr_milestones = (0.5, 1.5)
    with pytest.raises(InvalidValue, match=r"^--optim\.lr-milestones 0\.5 1\.5: must be fractions"):
        validate_config(config)
    config = tiny_config(tiny_scene)
    config.health.loss_factor = float("inf")
    with pytest.raises(InvalidValue, match=r"^--health\.loss-factor inf: must be a finite number"):
        validate_config(config)
