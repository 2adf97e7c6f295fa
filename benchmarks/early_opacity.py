"""The first steps of a NeuS run: does the surface vanish (opacity -> 0) before it forms?

    python benchmarks/early_opacity.py --scene .data/synthetic_spot_mitsuba --preset neus-nffb-fused \
        --seeds 0 1 --steps 40 --variants base=  mask1=model.loss.mask_weight=1.0

Every NeuS filter-bank run measured on an H100 (2026-12-06) lost most of its opacity (the mean opacity of the
step's rays, `opacity` in the training log) within its first ten to twenty steps, and one compiled
`neus-stylemod-nffb-fused` run never got it back (stopped by the divergence guard). This replays those steps on
any device at a small batch (`--rays`, default 128; on a CPU the collapse comes at the same steps as at the
preset's 1024 rays on a GPU, deterministic for a seed) with `--steps` steps of a run of `--run-steps` (the
schedules, warm-up included, follow the latter: 1000 steps give the 20-step warm-up a 120 s GPU run has). Each
variant is NAME=KEY=VALUE[,KEY=VALUE...] (config overrides as `nsr batch` takes them; `NAME=` for the preset
itself). Prints one JSON line per (variant, seed): the lowest opacity after step 8, the last, and all of them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from nsr.cli.train import with_overrides
from nsr.config import get_preset
from nsr.data.formats import load_scene
from nsr.engine.trainer import Trainer


def opacities(
    preset: str, scene: Path, overrides: list[str], seed: int, rays: int, steps: int, run_steps: int
):
    """The `opacity` metric of the first `steps` steps of a run of `run_steps` steps."""
    config = with_overrides(get_preset(preset), overrides)
    config.data.path, config.data.holdout_every = scene, 8  # as the batch runs hold out views
    config.seed, config.rays_per_batch, config.steps = seed, rays, run_steps
    config.val_every, config.tensorboard, config.checkpoint_every = 0, False, 10**9
    if config.model.kind != "neus":
        raise SystemExit(f"{preset}: not a NeuS preset (the opacity metric is NeuS's)")
    data = load_scene(scene, config.data.format, config.data.downscale)
    trainer = Trainer(config, data, Path(tempfile.mkdtemp()) / "run")
    return [round(trainer.train_step().metrics["opacity"], 4) for _ in range(steps)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--preset", default="neus-nffb-fused")
    parser.add_argument("--variants", nargs="+", default=["base="], metavar="NAME=KEY=VALUE,...")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rays", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--run-steps", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the lines here")
    args = parser.parse_args()
    lines = []
    for variant in args.variants:
        name, _, spec = variant.partition("=")
        overrides = [item for item in spec.split(",") if item]
        for seed in args.seeds:
            ops = opacities(args.preset, args.scene, overrides, seed, args.rays, args.steps, args.run_steps)
            row = {
                "preset": args.preset,
                "variant": name,
                "overrides": overrides,
                "seed": seed,
                "rays": args.rays,
            }
            row |= {"device": str(torch.device("cuda" if torch.cuda.is_available() else "cpu"))}
            row |= {"min_after_8": min(ops[8:], default=None), "last": ops[-1], "opacity": ops}
            print(json.dumps(row), flush=True)
            lines.append(row)
    if args.json:
        args.json.write_text(json.dumps(lines, indent=1))


if __name__ == "__main__":
    main()
