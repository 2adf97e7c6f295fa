"""Per-scan image-metric table on DTU in the shape of the original's published table (original_system.md §7).

Trains a preset on a DTU scene folder under a wall-clock budget with every 8th view held out, then runs
`nsr eval` on the held-out views (and, for comparison with the original, which only measured training
views, on the training views), and prints a Markdown table:

| Experiment | Encoder (implicit / view) | Scan | split | n | PSNR ↑ (min–max) | SSIM ↑ | LPIPS ↓ |

On the GPU machine (repo root, the scene carried as an ignored folder, e.g. .data/dtu_scan24):

    source benchmarks/device/setup.sh   # the carried wheels and src/
    python benchmarks/dtu_table.py --scene .data/dtu_scan24 --preset positional --max-seconds 600

LPIPS needs the AlexNet weights in the torch hub cache (see docs/evaluation.md); without them the
LPIPS column reads n/a. CPU check: `--max-seconds 20 --downscale 8 --device cpu`.
Results land in OUT (default /tmp/nsr-dtu-table/<scene>_<preset>_<seconds>s): run/, eval json, table.md.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path


def nsr(*args: object, capture: bool = False) -> str:
    command = [sys.executable, "-m", "nsr.cli.main", *map(str, args)]
    print("$", " ".join(command[2:]), flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE if capture else None, text=True)
    if result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(command)}")
    return result.stdout if capture else ""


def encoder_name(config_text: str) -> str:
    """'<implicit encoding> / <view encoding>' from a saved config.yaml."""
    import yaml

    model = yaml.safe_load(config_text)["config"]["model"]
    implicit = model["sdf"]["encoding"].get("kind", "?")
    view = model["appearance"].get("view_encoding", {}).get("kind", "?")
    return f"{implicit} / {view}"


def row(experiment: str, encoder: str, scan: str, split: str, r: dict) -> str:
    def pm(key: str, digits: int) -> str:
        if r.get(key) is None:
            return "n/a"
        return f"{r[key]:.{digits}f} ± {r[key + '_std']:.{digits}f}"

    psnr = f"{pm('psnr_mask', 2)} ({r['psnr_mask_min']:.2f}–{r['psnr_mask_max']:.2f})"
    return (
        f"| {experiment} | {encoder} | {scan} | {split} | {r['num_views']} | {psnr} | {pm('psnr', 2)} "
        f"| {pm('ssim', 4)} | {pm('lpips', 4)} |"
    )


HEADER = (
    "| Experiment | Encoder (implicit / view) | Scan | split | n | PSNR in mask ↑ (min–max) | PSNR full ↑ "
    "| SSIM ↑ | LPIPS ↓ |\n|---|---|---|---|---|---|---|---|---|"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scene", type=Path, required=True, help="DTU scene folder (IDR layout), e.g. .data/dtu_scan24"
    )
    parser.add_argument("--preset", default="positional")
    parser.add_argument("--max-seconds", type=float, default=600, help="training wall-clock budget")
    parser.add_argument("--downscale", type=float, default=1.0, help="image downscale for training and eval")
    parser.add_argument("--holdout", type=int, default=8, help="every K-th view is held out")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--scan", default=None, help="scan id shown in the table (default: from the folder name)"
    )
    parser.add_argument("--no-train-views", action="store_true", help="skip the training-view row")
    parser.add_argument("--lpips-weights", type=Path, default=None, help="AlexNet checkpoint for LPIPS")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "train_args", nargs="*", help="extra `nsr train` overrides after --, e.g. -- --rays-per-batch 4096"
    )
    args = parser.parse_args()

    if not args.scene.is_dir():
        raise SystemExit(f"{args.scene}: scene folder not found")
    scan = args.scan or (re.findall(r"\d+", args.scene.name) or ["?"])[-1]
    out = args.out or Path("/tmp/nsr-dtu-table") / f"{args.scene.name}_{args.preset}_{int(args.max_seconds)}s"
    run = out / "run"
    t0 = time.perf_counter()
    if not (run / "checkpoints" / "latest.pt").is_file():
        nsr(
            "train", "--data", args.scene, "--out", run, "--preset", args.preset, "--holdout", args.holdout,
            "--max-seconds", args.max_seconds, "--data.downscale", args.downscale, "--device", args.device,
            *args.train_args,
        )  # fmt: skip
    train_wall = time.perf_counter() - t0
    extra = ["--lpips-weights", args.lpips_weights] if args.lpips_weights else []
    results = {}
    splits = ["test"] if args.no_train_views else ["test", "train"]
    for split in splits:
        text = nsr("eval", run, "--split", split, "--json", "--device", args.device,
                   "--out", out / f"eval_{split}", *extra, capture=True)  # fmt: skip
        results[split] = json.loads(text)
    encoder = encoder_name((run / "config.yaml").read_text())
    experiment = f"nsr {args.preset} {int(args.max_seconds)} s"
    lines = [HEADER] + [
        row(experiment, encoder, scan, "held-out" if s == "test" else "train", results[s]) for s in splits
    ]
    table = "\n".join(lines)
    lpips_note = results["test"].get("lpips_status", "")
    (out / "table.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps({"scan": scan, "preset": args.preset, **results}, indent=2))
    print()
    print(table)
    print(f"\n{lpips_note}\ntraining + setup {train_wall:.0f} s; everything in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
