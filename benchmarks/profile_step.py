"""Profile training steps of a preset on a scene: time per step and the top operators.

python benchmarks/profile_step.py --scene .data/synthetic_spot_mitsuba --preset positional
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--preset", default="positional")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    config = get_preset(args.preset)
    config.tensorboard = False
    scene = load_idr_scene(args.scene)
    trainer = Trainer(config, scene, Path(tempfile.mkdtemp()))
    for _ in range(5):
        trainer.train_step()
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step()
    print(f"{(time.perf_counter() - start) / args.steps * 1000:.1f} ms/step")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        for _ in range(5):
            trainer.train_step()
    key = "cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=15))


if __name__ == "__main__":
    main()
