"""A run resumes wherever its checkpoint is loaded to: the trainer loads a checkpoint onto its own device
(`map_location`), which brings the saved RNG states there too; the generators' setters take only CPU byte
tensors. On a GPU this failed every resume ("RNG state must be a torch.ByteTensor", 2026-12-06, a batch's
trained-camera runs on an H100)."""

from __future__ import annotations

import pytest
import torch

from conftest import interrupted, tiny_config
from nsr.config.train import PocketFillConfig
from nsr.data.idr import load_idr_scene
from nsr.engine import Trainer
from nsr.engine.checkpoint import LATEST, load_checkpoint, rng_tensor, save_atomic


def cams_config(scene, device: str = "cpu"):
    """Every generator a run checkpoints: the ray sampler, the pocket fill and the camera guard."""
    config = tiny_config(scene, steps=6)
    config.device = device
    config.cameras.trainable = True
    config.cameras.pose_noise = "3,0.03,2"
    config.camera_guard.every, config.camera_guard.start, config.camera_guard.pixels = 1 / 3, 0.0, 64
    config.pockets = PocketFillConfig(every=2 / 6, start=1 / 6, samples=4096, batch=64, max_side=24)
    config.val_every = 0
    config.tensorboard = False
    config.checkpoint_every = 3
    return config


def rng_entries(state: dict) -> list[tuple[dict, str]]:
    """(container, key) of every RNG state in a trainer's checkpoint."""
    return [
        (state["rng"], "torch"),
        (state, "sampler_rng"),
        (state["pockets"], "rng"),
        (state["camera_guard"], "rng"),
    ]


def assert_same_run(a: Trainer, b: Trainer) -> None:
    assert torch.equal(a.cameras.correction, b.cameras.correction)
    assert torch.equal(a.pockets.points, b.pockets.points)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)


def test_rng_tensor_gives_the_setters_a_cpu_byte_tensor():
    generator = torch.Generator().manual_seed(3)
    saved = generator.get_state()
    assert torch.equal(rng_tensor(saved), saved) and rng_tensor(saved).dtype == torch.uint8
    with pytest.raises(TypeError, match="ByteTensor"):
        generator.set_state(saved.long())  # what the setters do with anything but a CPU byte tensor
    expected = torch.rand(4, generator=generator)
    generator.set_state(rng_tensor(saved.long()))
    assert torch.equal(torch.rand(4, generator=generator), expected)


def test_a_run_resumes_from_rng_states_that_are_not_cpu_byte_tensors(tiny_scene, tmp_path, one_torch_thread):
    """Without a GPU, the checkpoint's RNG states in another dtype stand in for their GPU copies (the setters
    refuse both alike, as the test above shows): the run still ends as one that was not interrupted."""
    scene = load_idr_scene(tiny_scene)
    straight = Trainer(cams_config(tiny_scene), scene, tmp_path / "a")
    straight.train()
    interrupted(Trainer(cams_config(tiny_scene), scene, tmp_path / "b"), at=3)
    latest = tmp_path / "b" / "checkpoints" / LATEST
    state = load_checkpoint(latest)
    for container, key in rng_entries(state):
        container[key] = container[key].long()
    state.pop("checksum")
    latest.unlink()
    save_atomic(state, latest)
    second = Trainer(cams_config(tiny_scene), scene, tmp_path / "b")
    assert second.resume() and second.step == 3
    second.train()
    assert_same_run(straight, second)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_gpu_run_resumes_exactly(tiny_scene, tmp_path):
    scene = load_idr_scene(tiny_scene)
    straight = Trainer(cams_config(tiny_scene, "cuda"), scene, tmp_path / "a")
    straight.train()
    interrupted(Trainer(cams_config(tiny_scene, "cuda"), scene, tmp_path / "b"), at=3)
    state = load_checkpoint(tmp_path / "b" / "checkpoints" / LATEST, "cuda")
    assert all(container[key].is_cuda for container, key in rng_entries(state))  # what the trainer loads
    second = Trainer(cams_config(tiny_scene, "cuda"), scene, tmp_path / "b")
    assert second.resume() and second.step == 3
    second.train()
    assert_same_run(straight, second)
