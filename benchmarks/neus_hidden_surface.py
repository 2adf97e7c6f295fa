"""What a run's extra surface is: far mesh samples, the mesh's pieces, and how much closing the solid removes.

    python benchmarks/neus_hidden_surface.py RUN --gt GT.obj [--resolution 512] [--close 0 1 2 3] [--out DIR]

A NeuS run on Spot (benchmarks/RESULTS.md, section 1) has GT-level completeness and a visible surface within
0.15% of the GT along the training rays (`benchmarks/neus_probe.py`), yet an accuracy of 1-1.5%: a third of
its mesh lies farther than 0.5% of the diagonal from the GT, almost all inside the object. This script
takes that surface apart:

- the run's SDF on a dense grid over [-1, 1]^3 (the lattice `nsr mesh` uses), meshed as `nsr mesh` does
  (clipped to the bounding sphere, largest component), then again after a morphological *closing* of the
  solid {f < 0} by r grid cells (dilation then erosion with a (2r + 1)^3 box): narrow grooves and cracks
  carved into the solid (positive space thinner than about 2r cells, which NeuS's logistic density renders
  as closed) are filled, wide concavities stay. The Chamfer per r says how much of the accuracy gap such
  grooves are;
- for the plain mesh: its connected pieces, the share of samples farther than 0.5% of the diagonal, the
  share of those inside the GT and how deep; with `--out`, those samples (far_points.npz) and the mesh
  itself (mesh.npz: float32 vertices, int32 faces; a 512^3 mesh as PLY is too large to come back from a
  device call) for plots and ray casting elsewhere.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import trimesh

from nsr.api import open_run
from nsr.mesh.distance import signed_distance
from nsr.mesh.extract import extract_mesh, transform_mesh
from nsr.metrics.geometry import mesh_metrics, nearest_tree, sample_surface

FAR = 0.5
"""% of the GT diagonal beyond which a mesh sample counts as far (the F-score threshold)."""


def sdf_grid(model, resolution: int) -> torch.Tensor:
    """(R, R, R) SDF values at the lattice linspace(-1, 1, R)^3, index order (x, y, z)."""
    device = next(model.parameters()).device
    axis = torch.linspace(-1, 1, resolution, device=device)
    yz = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    grid = torch.empty((resolution,) * 3, device=device)
    with torch.no_grad():
        for i in range(resolution):
            points = torch.cat([axis[i].expand(len(yz), 1), yz], 1)
            grid[i] = torch.cat([model.sdf(p) for p in points.split(262_144)]).view(resolution, resolution)
    return grid


def closed(grid: torch.Tensor, cells: int) -> tuple[torch.Tensor, float]:
    """The grid with the solid {f < 0} closed by `cells` (filled points set to -h/4, h the spacing), and the
    filled volume as a fraction of the solid's."""
    if cells == 0:
        return grid, 0.0
    solid = (grid < 0).float()[None, None]
    k = 2 * cells + 1
    grown = F.max_pool3d(solid, k, 1, cells)
    shut = 1 - F.max_pool3d(1 - grown, k, 1, cells)
    filled = (shut[0, 0] > 0) & (grid >= 0)
    h = 2 / (grid.shape[0] - 1)
    return torch.where(filled, torch.full_like(grid, -h / 4), grid), float(filled.sum() / solid.sum())


def grid_function(grid: torch.Tensor):
    """(M, 3) -> (M,) trilinear lookup of a lattice grid (exact at its points)."""
    volume = grid[None, None]

    def sdf(x: torch.Tensor) -> torch.Tensor:
        query = x[:, [2, 1, 0]].view(1, -1, 1, 1, 3)  # grid_sample's (W, H, D) = our (z, y, x)
        return F.grid_sample(volume, query, mode="bilinear", align_corners=True).view(-1)

    return sdf


def far_surface(mesh: trimesh.Trimesh, gt: trimesh.Trimesh, out: Path | None) -> dict:
    diag = float(np.linalg.norm(gt.bounds[1] - gt.bounds[0]))
    points, normals = sample_surface(mesh, 100_000, seed=0)
    distance = nearest_tree(sample_surface(gt, 200_000, seed=1)[0]).query(points, workers=-1)[0] / diag * 100
    far = distance > FAR
    pieces = sorted((p.area for p in mesh.split(only_watertight=False)), reverse=True)
    result = {
        "faces": len(mesh.faces),
        "area_vs_gt": round(mesh.area / gt.area, 4),
        "pieces": len(pieces),
        "largest_piece_areas": [round(a, 4) for a in pieces[:4]],
        "far_share": round(float(far.mean()), 4),
        "far_distance_pct_p10_p50_p90": np.percentile(distance[far], [10, 50, 90]).round(3).tolist()
        if far.any()
        else [],
    }
    if far.any():
        sample = points[far][:20_000]
        result["far_inside_gt"] = round(
            float(signed_distance(sample, np.asarray(gt.vertices), np.asarray(gt.faces)).inside.mean()), 4
        )
    if out is not None:
        np.savez_compressed(
            out / "far_points.npz",
            points=points[far].astype(np.float32),
            normals=normals[far].astype(np.float32),
            distance=distance[far].astype(np.float32),
        )
        np.savez_compressed(
            out / "mesh.npz", vertices=mesh.vertices.astype(np.float32), faces=mesh.faces.astype(np.int32)
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument("--gt", type=Path, required=True, help="GT mesh in world units")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--close", type=int, nargs="+", default=[0, 1, 2, 3], help="closing radii in cells")
    parser.add_argument("--out", type=Path, help="folder for result.json, far_points.npz and mesh.npz")
    args = parser.parse_args()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)

    trained = open_run(args.run)
    gt = trimesh.load(args.gt, force="mesh")
    grid = sdf_grid(trained.model, args.resolution)
    device = grid.device
    result: dict = {"run": str(args.run), "step": trained.step, "resolution": args.resolution, "closing": []}
    for cells in args.close:
        start = time.perf_counter()
        values, filled = closed(grid, cells)
        mesh = extract_mesh(grid_function(values), resolution=args.resolution, device=device, clip_radius=1.0)
        world = transform_mesh(mesh, trained.run.scale_mat)
        metrics = mesh_metrics(world, gt)
        row = {
            "cells": cells,
            "chamfer_pct": round(100 * metrics["chamfer_rel"], 4),
            "accuracy_pct": round(100 * metrics["accuracy_rel"], 4),
            "completeness_pct": round(100 * metrics["completeness_rel"], 4),
            "filled_volume": round(filled, 5),
            "seconds": round(time.perf_counter() - start, 1),
        }
        result["closing"].append(row)
        print(json.dumps(row), flush=True)
        if cells == 0:
            result["far"] = far_surface(world, gt, args.out)
            print(json.dumps(result["far"]), flush=True)
    if args.out is not None:
        (args.out / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
