"""How much fine detail a GT mesh has, at scales fixed relative to its size: which scene is "the scene with the
finest detail" (issue 16's bar: a filter bank ahead of the hash grid there).

    python benchmarks/scene_detail.py .data/meshes/spot_cow/cow.obj .data/synth_fuze/gt_mesh.ply \
        .data/synth_banana/gt_mesh.ply --json benchmarks/results/scene_detail.json

For each mesh: area-weighted samples with their face normals, and for a subset of them the normal variation
(1 - mean |cos| to the samples within a ball) at radii of 0.25%, 0.5% and 1% of the bounding-box diagonal:
0 on a plane, growing with the curvature at that scale (and at creases). A surface whose variation at the
smallest radius is high has detail a reconstruction must resolve at that scale; the mean and the 90th
percentile are printed, with the share of the surface above 0.01 (a bend of about 8 degrees across the ball).
The metric's `detail_samples` (the 10% of the GT with the most variation) is relative to each mesh; this is
comparable between meshes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

RADII = (0.0025, 0.005, 0.01)
"""Ball radii as fractions of the GT bounding-box diagonal."""


def normal_variation_at(mesh: trimesh.Trimesh, radius: float, samples: int, queries: int, seed: int):
    """(queries,) 1 - mean |cos| between a sample's normal and those of the samples within `radius`."""
    rng = np.random.default_rng(seed)
    points, faces = trimesh.sample.sample_surface(mesh, samples, seed=int(rng.integers(2**31)))
    normals = mesh.face_normals[faces]
    chosen = rng.choice(len(points), size=min(queries, len(points)), replace=False)
    tree = cKDTree(points)
    neighbours = tree.query_ball_point(points[chosen], r=radius, workers=-1)
    variation = np.empty(len(chosen))
    for i, (index, near) in enumerate(zip(chosen, neighbours, strict=True)):
        variation[i] = 1.0 - np.abs(normals[near] @ normals[index]).mean()
    return variation


def describe(path: Path, samples: int, queries: int, seed: int) -> dict:
    mesh = trimesh.load(path, force="mesh", process=False)
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise SystemExit(f"{path}: not a triangle mesh")
    diagonal = float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0]))
    row = {"mesh": str(path), "faces": len(mesh.faces), "diagonal": diagonal}
    row["area_over_diagonal2"] = float(mesh.area / diagonal**2)
    for radius in RADII:
        variation = normal_variation_at(mesh, radius * diagonal, samples, queries, seed)
        key = f"{100 * radius:g}%"
        row[f"mean@{key}"] = float(variation.mean())
        row[f"p90@{key}"] = float(np.percentile(variation, 90))
        row[f"share>0.01@{key}"] = float((variation > 0.01).mean())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("meshes", type=Path, nargs="+")
    parser.add_argument("--samples", type=int, default=400_000, help="surface samples per mesh")
    parser.add_argument("--queries", type=int, default=20_000, help="samples whose variation is taken")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = [describe(path, args.samples, args.queries, args.seed) for path in args.meshes]
    keys = [k for k in rows[0] if "@" in k]
    print("| mesh | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for row in rows:
        print(f"| {row['mesh']} | " + " | ".join(f"{row[k]:.4f}" for k in keys) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
