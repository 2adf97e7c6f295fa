"""How much of a trained-camera run's Chamfer is its alignment: the mesh against the GT as aligned, then after ICP.

    python benchmarks/mesh_alignment.py GT_MESH RUN_DIR... [--json OUT.json]

A run whose cameras started elsewhere is scored in the ground truth's frame through the similarity that maps
its camera centres onto the true ones (`nsr.metrics.poses`; the batch writes RUN/mesh_aligned_STEP.ply). Any
error of that similarity adds to the Chamfer distance although the surface itself may be as good. This moves
the run's latest mesh (`mesh_aligned_*.ply`, else `mesh_*.ply`) onto the GT by ICP (`nsr.metrics.geometry.icp_onto`:
point to point, a rigid motion and a scale, the pairs farther than 2% of the GT diagonal left out) and prints the Chamfer distance in
% of the GT diagonal before and after, with the motion ICP found (degrees, % of the diagonal, scale). A run
with the true cameras is the control: ICP can only fit the sampling noise there, so its gain bounds what ICP
takes off a surface that is not misaligned.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import trimesh

from nsr.metrics.geometry import icp_onto, mesh_metrics


def latest_mesh(run: Path) -> Path:
    """The run's last mesh in the GT frame (`mesh_aligned_*.ply` for trained cameras, else `mesh_*.ply`)."""
    for pattern in ("mesh_aligned_*.ply", "mesh_*.ply"):
        found = sorted(run.glob(pattern))
        if found:
            return found[-1]
    raise FileNotFoundError(
        f"{run}: no mesh_aligned_*.ply or mesh_*.ply (was the run measured by `nsr batch`?)"
    )


def measure(mesh: trimesh.Trimesh, gt: trimesh.Trimesh, samples: int = 200_000) -> dict[str, float]:
    """Chamfer before and after ICP (`nsr.metrics.geometry.icp_onto`), in % of the GT diagonal, with `samples`
    points a mesh (the batch's metric: 200k), and the motion."""
    moved, motion = icp_onto(mesh, gt)
    before, after = mesh_metrics(mesh, gt, samples), mesh_metrics(moved, gt, samples)
    return {
        "chamfer_pct": 100 * before["chamfer_rel"],
        "chamfer_icp_pct": 100 * after["chamfer_rel"],
        "icp_rotation_deg": motion["rotation_deg"],
        "icp_shift_pct": 100 * motion["shift_rel"],
        "icp_scale": motion["scale"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("gt", type=Path, help="the ground-truth mesh, in the runs' world frame and units")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders measured by `nsr batch`")
    parser.add_argument("--json", type=Path, help="write the rows here too")
    args = parser.parse_args()
    gt = trimesh.load(args.gt, force="mesh")
    rows = []
    for run in args.runs:
        try:
            path = latest_mesh(run)
        except FileNotFoundError as error:
            print(f"skipped: {error}", flush=True)  # a run still training, or cut before its measurement
            continue
        row = {"run": run.name, "mesh": path.name, **measure(trimesh.load(path, force="mesh"), gt)}
        rows.append(row)
        print(
            f"{run.name}: Chamfer {row['chamfer_pct']:.4f}% -> {row['chamfer_icp_pct']:.4f}% after ICP "
            f"(rotation {row['icp_rotation_deg']:.3f} deg, shift {row['icp_shift_pct']:.4f}%, "
            f"scale {row['icp_scale']:.5f})",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if not math.isfinite(sum(r["chamfer_icp_pct"] for r in rows)):
        raise SystemExit("a Chamfer distance is not finite")


if __name__ == "__main__":
    main()
