"""How far NeuS's rendering of a *perfect* SDF puts the surface from the true one, for a range of inverse stds.

    python benchmarks/neus_render_bias.py --scene .data/synthetic_spot_mitsuba \
        --gt .data/meshes/spot_cow/cow.obj [--inv-s 50 100 200 400 800 1600] [--rays 2000]

Rays of every 6th view through pixels inside the GT mask; along each, the GT's exact signed distance
(`nsr.mesh.distance.signed_distance`) at 3000 boundaries over the ray's chord of the unit sphere; NeuS's
section opacities from the boundary values (`alpha = 1 - Phi_s(f_next) / Phi_s(f_prev)`, the renderer's
formula with exact section ends), the weight-averaged depth and the peak of the weights, each against the
first zero crossing. Printed as displacements along the normal in % of the GT diagonal (negative: in front
of the surface, outside the object). A trained SDF whose images match should sit that far on the other
side, so this is the renderer's share of a NeuS run's error at its trained inverse std (see
`benchmarks/neus_probe.py`, which reads a run's).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from meshing_floor import exact_sdf

from nsr.cameras.rays import pixel_rays
from nsr.data.idr import load_idr_scene
from nsr.data.meshes import read_mesh
from nsr.renderers.sphere_tracing import intersect_sphere


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--gt", type=Path, required=True, help="GT mesh in world units")
    parser.add_argument("--inv-s", type=float, nargs="+", default=[50, 100, 200, 400, 800, 1600, 3200])
    parser.add_argument("--rays", type=int, default=2000)
    parser.add_argument("--boundaries", type=int, default=3000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    scene = load_idr_scene(args.scene)
    gt = read_mesh(args.gt, "ground-truth mesh")
    sdf = exact_sdf(gt, scene.scale_mat)
    scale = float(np.cbrt(abs(np.linalg.det(scene.scale_mat[:3, :3]))))
    diag = float(np.linalg.norm(gt.bounds[1] - gt.bounds[0])) / scale

    rng = np.random.default_rng(0)
    views = list(range(0, scene.num_views, 6))
    origins, directions = [], []
    for v in views:
        ys, xs = np.nonzero(scene.masks[v] > 0.5)
        pick = rng.choice(len(xs), min(len(xs), args.rays // len(views)), replace=False)
        uv = torch.tensor(np.stack([xs[pick], ys[pick]], -1), dtype=torch.float32)
        o, d = pixel_rays(torch.tensor(scene.intrinsics[v]).float(), torch.tensor(scene.c2w[v]).float(), uv)
        origins.append(o)
        directions.append(d)
    origins, directions = torch.cat(origins), torch.cat(directions)
    near, far, _ = intersect_sphere(origins, directions, 1.0)
    t = near[:, None] + (far - near)[:, None] * torch.linspace(0, 1, args.boundaries + 1)
    points = origins[:, None] + directions[:, None] * t[..., None]
    f = torch.cat([sdf(p) for p in points.reshape(-1, 3).split(200_000)]).view(t.shape).double()
    t = t.double()

    negative = f < 0
    crosses = negative.any(1)
    i = torch.argmax(negative.int(), 1).clamp_min(1)
    rows = torch.arange(len(t))
    f0, f1, t0, t1 = f[rows, i - 1], f[rows, i], t[rows, i - 1], t[rows, i]
    first = t0 + (t1 - t0) * f0 / (f0 - f1)
    cos = ((f1 - f0) / (t1 - t0)).abs().clamp(max=1)  # |d f / d t| at the crossing = |cos(ray, normal)|
    mid = (t[:, 1:] + t[:, :-1]) / 2

    rows_out = []
    for s in args.inv_s:
        log_phi = F.logsigmoid(s * f)
        log_keep = (log_phi[:, 1:] - log_phi[:, :-1]).clamp_max(0)
        alpha = -torch.expm1(log_keep)
        transmittance = torch.exp(
            torch.cat([torch.zeros_like(log_keep[:, :1]), log_keep.cumsum(1)[:, :-1]], 1)
        )
        weights = alpha * transmittance
        opacity = weights.sum(1)
        expected = (weights * mid).sum(1) / opacity
        peak = mid[rows, weights.argmax(1)]
        normal = lambda depth: ((depth - first) * cos)[crosses] / diag * 100  # noqa: E731
        e, p = normal(expected), normal(peak)
        row = {
            "inv_s": s,
            "opacity": round(float(opacity[crosses].mean()), 4),
            "expected_depth_mean": round(float(e.mean()), 4),
            "expected_depth_mean_abs": round(float(e.abs().mean()), 4),
            "weight_peak_mean": round(float(p.mean()), 4),
            "weight_peak_mean_abs": round(float(p.abs().mean()), 4),
        }
        rows_out.append(row)
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(rows_out, indent=1))


if __name__ == "__main__":
    main()
