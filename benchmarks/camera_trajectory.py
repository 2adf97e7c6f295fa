"""The cameras' errors at every kept checkpoint of trained-camera runs: are they still converging when the
run ends?

    python benchmarks/camera_trajectory.py RUN... [--json OUT.json]

Prints, per run and checkpoint: step, rotation error mean / max (degrees) and mean centre error (% of the
distance to the scene centre) of the training views, as `nsr eval-cameras RUN --checkpoint STEP` reports them.
Reads only the cameras from each checkpoint (no model is built), so it is quick on many runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nsr.cameras.refine import CameraRefinement
from nsr.data.idr import load_cameras
from nsr.engine.cameras import GT_CAMERAS, evaluate_cameras
from nsr.engine.checkpoint import load_checkpoint


def trajectory(run_dir: Path) -> list[dict]:
    """One row per checkpoint of a run (sorted by step)."""
    split = json.loads((run_dir / "split.json").read_text())
    _, gt_c2w, gt_scale = load_cameras(run_dir / GT_CAMERAS, len(split["train"]) + len(split["test"]))
    rows = []
    for path in sorted((run_dir / "checkpoints").glob("step_*.pt")):
        state = load_checkpoint(path)
        if "cameras" not in state:
            continue
        cameras = CameraRefinement.from_state_dict(state["cameras"])
        initial, final = cameras.initial_c2w.cpu().numpy(), cameras.poses()
        after = evaluate_cameras(initial, final, gt_c2w, gt_scale, split["train"]).after.summary()
        rows.append(
            {
                "step": int(state["step"]),
                "rotation_deg_mean": after["rotation_deg_mean"],
                "rotation_deg_max": after["rotation_deg_max"],
                "centre_pct_mean": 100 * after["centre_rel_mean"],
            }
        )
    return sorted(rows, key=lambda r: r["step"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    table = {}
    for run_dir in args.runs:
        if not (run_dir / GT_CAMERAS).is_file():
            print(f"{run_dir}: no {GT_CAMERAS} (not a trained-camera run with known cameras), skipped")
            continue
        table[run_dir.name] = rows = trajectory(run_dir)
        for r in rows:
            print(
                f"{run_dir.name} {r['step']:6d} rot {r['rotation_deg_mean']:.3f} / {r['rotation_deg_max']:.3f} deg,"
                f" centre {r['centre_pct_mean']:.3f}%"
            )
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
