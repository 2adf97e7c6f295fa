"""Time the NeuS volume renderer's training step (render + backward) with a preset's fields.

The SDF and appearance fields come from an IDR preset's model config (the fields NeuS will share); the
rays point from a camera sphere of radius 3 at the unit sphere. One JSON line per case: milliseconds per
step, rays per second, peak GPU memory. Run on a GPU:

    python benchmarks/volume_render.py --preset hashgrid-fused --rays 4096
    python benchmarks/volume_render.py --preset positional --rays 1024 --samples 64 --importance 64

Cases: without / with the occupancy grid (built once from the initial sphere SDF), without / with the
NeRF++ background field. `--steps` steps are timed after 5 warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from nsr.config import get_preset
from nsr.fields import BackgroundFieldConfig, VarianceConfig
from nsr.renderers import FieldSamples, OccupancyGridConfig, VolumeRenderer, VolumeRendererConfig


def train_step(
    renderer, grid, background_fn, sdf_field, field_fn, variance, optimiser, origins, directions, rgb_gt
):
    """One NeuS-like step: render, colour L1 + eikonal on the samples inside the sphere, backward, update."""
    out = renderer.render(
        origins, directions, sdf_field.sdf, field_fn, variance.inv_s(), 1.0,
        occupancy=grid, background_fn=background_fn, training=True,
    )  # fmt: skip
    loss = (out.rgb - rgb_gt).abs().sum(-1).mean()
    samples = out.samples
    grad_norm = samples.gradients.norm(dim=-1)
    loss = loss + 0.1 * (((grad_norm - 1) ** 2) * samples.inside).sum() / samples.inside.sum()
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="hashgrid-fused")
    parser.add_argument("--rays", type=int, default=4096)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--importance", type=int, default=64)
    parser.add_argument("--up-sample-steps", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--grid-resolution", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

    model_config = get_preset(args.preset).model
    sdf_field = model_config.sdf.build().to(device)
    appearance = model_config.appearance.build(model_config.sdf.feature_dim).to(device)
    variance = VarianceConfig().build().to(device)
    background = BackgroundFieldConfig().build().to(device)
    params = [
        *sdf_field.parameters(),
        *appearance.parameters(),
        *variance.parameters(),
        *background.parameters(),
    ]
    optimiser = torch.optim.Adam(params, lr=1e-4)

    def field_fn(points, view_dirs):
        out = sdf_field.with_gradient(points, create_graph=torch.is_grad_enabled())
        rgb = appearance(points, out.gradient, view_dirs, out.features)
        return FieldSamples(sdf=out.sdf, gradient=out.gradient, rgb=rgb)

    gen = torch.Generator().manual_seed(0)
    origins = F.normalize(torch.randn(args.rays, 3, generator=gen), dim=-1) * 3.0
    targets = (torch.rand(args.rays, 3, generator=gen) - 0.5) * 1.2
    origins, directions = origins.to(device), F.normalize(targets - origins, dim=-1).to(device)
    rgb_gt = torch.rand(args.rays, 3, device=device)

    for occupancy in (False, True):
        for bg in ("none", "field"):
            config = VolumeRendererConfig(
                num_samples=args.samples,
                num_importance=args.importance,
                up_sample_steps=args.up_sample_steps,
                background=bg,
                occupancy=OccupancyGridConfig(enabled=occupancy, resolution=args.grid_resolution),
            )
            renderer = VolumeRenderer(config)
            grid = None
            if occupancy:
                grid = config.occupancy.build(config.bounding_radius).to(device)
                grid.update(sdf_field.sdf, variance.inv_s())

            bg_fn = background if bg == "field" else None
            args_ = (
                renderer,
                grid,
                bg_fn,
                sdf_field,
                field_fn,
                variance,
                optimiser,
                origins,
                directions,
                rgb_gt,
            )
            for _ in range(5):
                train_step(*args_)
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            for _ in range(args.steps):
                train_step(*args_)
            if device.type == "cuda":
                torch.cuda.synchronize()
            ms = (time.perf_counter() - start) / args.steps * 1000
            record = {
                "preset": args.preset,
                "rays": args.rays,
                "samples": args.samples + args.importance,
                "occupancy": occupancy,
                "background": bg,
                "ms_per_step": round(ms, 2),
                "rays_per_s": round(args.rays / ms * 1000),
                "occupied_fraction": None if grid is None else round(grid.occupied_fraction().item(), 4),
                "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                if device.type == "cuda"
                else None,
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            }
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
