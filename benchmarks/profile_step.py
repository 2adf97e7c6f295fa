"""Time training steps of a preset on a scene, optionally comparing tracer modes, and profile the last.

python benchmarks/profile_step.py --scene .data/synthetic_spot_mitsuba --preset positional
python benchmarks/profile_step.py --scene ... --preset demo --modes compact static static+graph
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from nsr.config import get_preset
from nsr.data.idr import load_idr_scene
from nsr.engine.trainer import Trainer


def make_trainer(preset: str, scene, mode: str) -> Trainer:
    config = get_preset(preset)
    config.tensorboard = False
    config.model.tracer.mode = "static" if mode.startswith("static") else "compact"
    config.model.tracer.cuda_graph = mode.endswith("+graph")
    return Trainer(config, scene, Path(tempfile.mkdtemp()))


def time_steps(trainer: Trainer, steps: int) -> float:
    for _ in range(5):
        trainer.train_step()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--preset", default="positional")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--modes", nargs="+", default=["compact"], help="compact | static | static+graph")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    scene = load_idr_scene(args.scene)
    trainer = None
    for mode in args.modes:
        trainer = make_trainer(args.preset, scene, mode)
        ms = time_steps(trainer, args.steps)
        print(f"{args.preset:>20} {mode:>14}: {ms:6.1f} ms/step ({1000 / ms:5.1f} it/s)", flush=True)
    if args.no_profile or trainer is None:
        return
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        for _ in range(5):
            trainer.train_step()
    key = "cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=15))


if __name__ == "__main__":
    main()
