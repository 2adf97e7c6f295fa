"""Why a NeuS run's surface lies where it does: renderer bias, occupancy culling and the SDF's own error.

    python benchmarks/neus_probe.py RUN --gt GT.obj --scene DIR [--rays 4000] [--json OUT.json]

For rays of the run's training views that hit the object (GT mask), three depths along each ray, all in
the run's normalised frame: the GT surface's first hit (Embree), the first zero crossing of the trained
SDF (a dense search of 2048 samples over the ray's chord of the bounding sphere, linearly interpolated),
and the depth NeuS renders (the weight-averaged depth of `model.render`, what the colour loss sees). Their
differences, times the cosine between the ray and the GT normal, are displacements along the normal in %
of the GT diagonal, positive when the first depth lies behind the second (inside the object):

- `sdf_vs_gt`: where the trained zero level set lies against the GT (positive: eroded);
- `render_vs_sdf`: the renderer's bias at the trained inverse std (positive: the rendered surface lies
  behind the zero level set);
- `render_vs_gt`: where the images see the surface.

Besides the mean, mean absolute and 90th percentile of each, it prints the run's inverse std, its
occupancy grid (fraction occupied after an update with the final SDF, and the fraction of GT surface
samples that lie in cells the renderer skips: never sampled, hence never trained) and writes, with
`--samples-out`, the GT surface samples with their displacement (for plots). Needs Embree (`pip install
embreex`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import trimesh

from nsr.accel.embree import ray_intersector
from nsr.api import open_run
from nsr.cameras.rays import pixel_rays
from nsr.data.idr import load_idr_scene
from nsr.renderers.sphere_tracing import intersect_sphere


def first_zero(sdf_fn, origins, directions, near, far, count: int = 2048) -> torch.Tensor:
    """(N,) depth of the first sign change of sdf along each ray in [near, far] (inf where none)."""
    steps = torch.linspace(0, 1, count, device=origins.device)
    depths = []
    for o, d, n, f in zip(origins.split(256), directions.split(256), near.split(256), far.split(256)):
        t = n[:, None] + (f - n)[:, None] * steps
        values = sdf_fn((o[:, None] + d[:, None] * t[..., None]).reshape(-1, 3)).view(t.shape)
        negative = values < 0
        index = torch.argmax(negative.int(), dim=1).clamp_min(1)
        rows = torch.arange(len(t), device=t.device)
        v0, v1 = values[rows, index - 1], values[rows, index]
        t0, t1 = t[rows, index - 1], t[rows, index]
        crossing = t0 + (t1 - t0) * v0 / (v0 - v1).clamp_min(1e-12)
        depths.append(torch.where(negative.any(1) & (v0 >= 0), crossing, torch.full_like(crossing, np.inf)))
    return torch.cat(depths)


def stats(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    return {
        "mean": round(float(values.mean()), 5),
        "mean_abs": round(float(np.abs(values).mean()), 5),
        "p90_abs": round(float(np.quantile(np.abs(values), 0.9)), 5),
        "inside_share": round(float((values > 0).mean()), 4),
        "count": len(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument("--gt", type=Path, required=True, help="GT mesh in world units")
    parser.add_argument("--scene", type=Path, required=True, help="the run's IDR scene folder (masks)")
    parser.add_argument("--rays", type=int, default=4000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--samples-out", type=Path, help="npz of GT surface samples and their displacement")
    args = parser.parse_args()

    trained = open_run(args.run)
    run, model = trained.run, trained.model
    device = next(model.parameters()).device
    scale_mat = run.scale_mat
    scale = float(np.cbrt(abs(np.linalg.det(scale_mat[:3, :3]))))
    gt_world = trimesh.load(args.gt, force="mesh")
    diag = float(np.linalg.norm(gt_world.bounds[1] - gt_world.bounds[0])) / scale  # normalised units
    gt = gt_world.copy()
    gt.apply_transform(np.linalg.inv(scale_mat))
    scene = load_idr_scene(args.scene)

    rng = np.random.default_rng(0)
    views = run.train_views
    per_view = max(1, args.rays // len(views))
    origins, directions = [], []
    for v in views:
        ys, xs = np.nonzero(scene.masks[v] > 0.5)
        pick = rng.choice(len(xs), min(per_view, len(xs)), replace=False)
        uv = torch.tensor(np.stack([xs[pick], ys[pick]], -1), dtype=torch.float32)
        o, d = pixel_rays(torch.tensor(scene.intrinsics[v]).float(), torch.tensor(scene.c2w[v]).float(), uv)
        origins.append(o)
        directions.append(d)
    origins, directions = torch.cat(origins).to(device), torch.cat(directions).to(device)

    caster = ray_intersector(gt)
    o_np, d_np = origins.cpu().double().numpy(), directions.cpu().double().numpy()
    locations, index, tri = caster.intersects_location(o_np, d_np, multiple_hits=False)
    t_gt = np.full(len(o_np), np.inf)
    t_gt[index] = np.linalg.norm(locations - o_np[index], axis=1)
    cos = np.zeros(len(o_np))
    cos[index] = np.abs((gt.face_normals[tri] * d_np[index]).sum(1))

    with torch.no_grad():
        near, far, _ = intersect_sphere(origins, directions, model.bounding_radius)
        t_sdf = first_zero(model.sdf, origins, directions, near, far).cpu().double().numpy()
        rendered = model.render(origins, directions)
        t_render = rendered.depth.cpu().double().numpy()
        t_render[rendered.opacity.cpu().numpy() < 0.5] = np.inf

    def along_normal(a, b):
        both = np.isfinite(a) & np.isfinite(b)
        out = np.full(len(a), np.nan)
        out[both] = (a[both] - b[both]) * cos[both] / diag * 100
        return out

    result: dict = {"run": str(args.run), "step": run.step, "rays": len(o_np)}
    inv_s = getattr(getattr(model, "variance", None), "inv_s", None)
    if inv_s is not None:
        result["inv_s"] = round(float(inv_s().detach()), 2)
    for name, a, b in (
        ("sdf_vs_gt", t_sdf, t_gt),
        ("render_vs_sdf", t_render, t_sdf),
        ("render_vs_gt", t_render, t_gt),
    ):
        result[name] = stats(along_normal(a, b))
    result["no_zero_crossing"] = round(float((~np.isfinite(t_sdf) & np.isfinite(t_gt)).mean()), 4)

    points, _ = trimesh.sample.sample_surface(gt, 100_000, seed=0)
    points_t = torch.tensor(points, dtype=torch.float32, device=device)
    occupancy = getattr(model, "occupancy", None)
    if occupancy is not None:
        with torch.no_grad():
            occupancy.update(model.sdf, model.variance.inv_s())
            result["occupied_fraction"] = round(float(occupancy.occupied_fraction()), 4)
            result["gt_in_skipped_cells"] = round(
                float((~occupancy.lookup(points_t, dilated=True)).float().mean()), 5
            )
            result["gt_in_unoccupied_cells"] = round(float((~occupancy.lookup(points_t)).float().mean()), 5)
    if args.samples_out:
        with torch.no_grad():
            values = torch.cat([model.sdf(p) for p in points_t.split(65536)]).cpu().numpy()
        np.savez_compressed(
            args.samples_out, points=points.astype(np.float32), sdf=values.astype(np.float32), diag=diag
        )
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
