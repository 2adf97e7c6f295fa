"""Shared test fixtures: everything runs on CPU with small synthetic data."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(
    os.environ.get("NSR_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
"""../shared/data beside the checkout, or $NSR_SHARED_DATA (e.g. from a worktree elsewhere)."""


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
"""The project's benchmark scripts (not a package: tests load them by path)."""


def load_benchmark(name: str):
    """The module of `benchmarks/NAME.py`, loaded by path."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def shared_data() -> Path:
    """The project's shared test data (../shared/data); tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory) -> Path:
    """The default generated scene at 8 views of 32x32 pixels (generated once per test session)."""
    from nsr.scenes import generate_default_scene

    return generate_default_scene(tmp_path_factory.mktemp("scene") / "tiny", num_views=8, resolution=32)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, float]:
    """`nsr demo` run once per session as a user runs it (all cores, default settings), shared by the slow
    tests that need a trained demo run: (its folder, its wall time in seconds)."""
    import subprocess
    import sys
    import time

    out = tmp_path_factory.mktemp("demo") / "demo"
    start = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "nsr.cli.main", "demo", "--out", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"nsr demo failed:\n{result.stdout}\n{result.stderr}"
    return out, time.time() - start


def tiny_config(scene: Path, steps: int = 4):
    """A TrainConfig that trains a very small model for a few steps (test helper)."""
    from nsr.config import get_preset

    config = get_preset("demo")
    config.data.path = scene
    config.data.holdout_every = 4
    config.steps = steps
    config.rays_per_batch = 64
    config.checkpoint_every = 2
    config.val_every = 2
    config.log_every = 1
    config.device = "cpu"
    config.model.sdf.hidden_dim = 48
    config.model.sdf.feature_dim = 8
    config.model.appearance.hidden_dim = 32
    config.model.tracer.num_samples = 16
    config.model.tracer.mask_samples = 8
    return config


def interrupted(trainer, at: int):
    """A Trainer stopped after `at` of its steps with its checkpoint written, as a killed run leaves it
    (test helper)."""
    trainer.prepare_run_dir()
    while trainer.step < at:
        trainer.train_step()
    trainer.save_checkpoint()
    return trainer


def make_run(
    scene_dir: Path, run_dir: Path, radius: float = 0.6, colour: tuple = (0.5, 0.5, 0.5), feature_dim=8
):
    """A run folder whose model is a sphere SDF of `radius` with a constant colour (no training)."""
    from nsr.data.idr import load_idr_scene
    from nsr.engine.trainer import Trainer

    config = tiny_config(scene_dir)
    config.model.sdf.init_radius = radius
    config.model.sdf.feature_dim = feature_dim
    trainer = Trainer(config, load_idr_scene(scene_dir), run_dir)
    last = trainer.model.appearance.layers[-1]
    with torch.no_grad():
        last.parametrizations.weight.original0.zero_()  # weight norm g = 0: the colour is the bias alone
        last.bias.copy_(torch.logit(torch.tensor(colour)))
    trainer.prepare_run_dir()
    trainer.save_checkpoint()
    return run_dir


@pytest.fixture
def one_torch_thread():
    """Run a test on one torch thread: tiny tensors on a shared 2-core machine are faster that way
    (two threads contending with other processes spin and stall). Restores the thread count after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Analytic shapes seen by a ring of cameras (visibility and pocket-fill tests; known answers).
def ball(x: torch.Tensor, centre=(0.0, 0.0, 0.0), radius: float = 0.6) -> torch.Tensor:
    return (x - torch.tensor(centre)).norm(dim=-1) - radius


def with_bubble(x):  # a ball of radius 0.6 with a hidden spherical cavity of radius 0.2 inside
    return torch.maximum(ball(x), -ball(x, (0.1, 0.0, 0.0), 0.2))


def with_bite(x):  # the same ball with a visible spherical bite out of its +x side
    return torch.maximum(ball(x), -ball(x, (0.6, 0.0, 0.0), 0.25))


def ring_of_cameras(count: int = 8, distance: float = 3.0):
    from nsr.cameras.paths import look_at

    c2w = []
    for i in range(count):
        angle = 2 * math.pi * i / count
        eye = np.array([distance * math.cos(angle), 0.3 * distance * (i % 2), distance * math.sin(angle)])
        c2w.append(look_at(eye, np.zeros(3), np.array([0.0, 1.0, 0.0])))
    k = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 31.5], [0.0, 0.0, 1.0]])
    return np.repeat(k[None], count, 0), np.stack(c2w)


needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="triton is not installed"
)
"""Marks a test that runs a Triton kernel (under the interpreter on a CPU)."""


def under_triton_interpreter(test_file: str, code: str) -> None:
    """Runs `code` in a fresh Python with TRITON_INTERPRET=1 (it must be set before Triton is imported),
    `src/`, `test_file`'s folder and tests/ on the path, so that it can import the test module's helpers; fails the
    test with the output when the code fails (e.g. an assert)."""
    here = Path(test_file).resolve()
    src = Path(__file__).resolve().parents[1] / "src"
    prelude = "import sys; sys.path[:0] = sys.argv[1:]\n"  # src, the test's folder, tests/ (conftest)
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", prelude + code, str(src), str(here.parent), str(Path(__file__).parent)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
