"""How good a perfect SDF measures: the floor under NSR's geometry numbers for a scene.

    python benchmarks/meshing_floor.py --scene .data/synthetic_spot_mitsuba \
        --gt .data/meshes/spot_cow/cow.obj --resolution 256 512 1024 [--json out.json]

The GT mesh's own exact signed distance (`nsr.mesh.distance.signed_distance`) goes through what a trained
model's SDF goes through in `nsr mesh`, `nsr eval` and `nsr batch`: marching cubes in the scene's normalised
frame over [-1, 1]^3 at each resolution, clipped to the unit bounding sphere, largest component, mapped to
world units by the scene's `scale_mat`, then `mesh_metrics` against the GT (200k samples per side, seed 0).
The first row is the GT against itself (the sampling floor alone). A reconstruction's Chamfer cannot be
expected below the row of the resolution it was meshed at.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from nsr.data.idr import load_idr_scene
from nsr.data.meshes import read_mesh
from nsr.mesh.distance import signed_distance
from nsr.mesh.extract import extract_mesh, transform_mesh
from nsr.metrics.geometry import mesh_metrics


def exact_sdf(gt, scale_mat: np.ndarray):
    """The GT's signed distance as a function of normalised-frame points, in normalised units."""
    scale = float(np.cbrt(abs(np.linalg.det(scale_mat[:3, :3]))))
    vertices, faces = np.asarray(gt.vertices), np.asarray(gt.faces)

    def sdf(x: torch.Tensor) -> torch.Tensor:
        points = x.double().numpy() @ scale_mat[:3, :3].T + scale_mat[:3, 3]
        return torch.from_numpy(signed_distance(points, vertices, faces).distance / scale).float()

    return sdf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", required=True, help="scene folder (its scale_mat maps the frame)")
    parser.add_argument("--gt", required=True, help="GT mesh in world units")
    parser.add_argument("--resolution", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()

    scene = load_idr_scene(args.scene)
    gt = read_mesh(args.gt, "ground-truth mesh")
    rows = []
    itself = mesh_metrics(gt, gt, num_samples=args.samples)
    rows.append(
        {"mesh": "GT itself", **{k: itself[k] for k in ("chamfer_rel", "accuracy_rel", "completeness_rel")}}
    )
    sdf = exact_sdf(gt, scene.scale_mat)
    for resolution in args.resolution:
        start = time.perf_counter()
        mesh = extract_mesh(sdf, resolution=resolution, bound=1.0, clip_radius=1.0)
        mesh = transform_mesh(mesh, scene.scale_mat)
        m = mesh_metrics(mesh, gt, num_samples=args.samples)
        rows.append(
            {
                "mesh": f"exact SDF at {resolution}^3",
                **{k: m[k] for k in ("chamfer_rel", "accuracy_rel", "completeness_rel")},
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    print("| mesh | Chamfer % | accuracy % | completeness % |\n|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mesh']} | {100 * r['chamfer_rel']:.3f} | {100 * r['accuracy_rel']:.3f} | "
            f"{100 * r['completeness_rel']:.3f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
