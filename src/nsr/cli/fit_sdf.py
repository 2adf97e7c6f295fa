"""`nsr fit-sdf MESH --encoding NAME [--steps N] [--max-seconds S] [--json]`: the encoding benchmark.

Fits an SDF field with the named encoding directly to the mesh's signed distance, then reports the
Chamfer distance of its zero level set to the mesh (mesh units, and relative to the mesh's
bounding-box diagonal), the volumetric IoU and the training time. See `nsr.fitting.fit_sdf` for the
protocol and docs/fit_sdf.md for the options.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro
from tqdm import tqdm

from nsr.cli.common import CountProgress, friendly
from nsr.fitting.fit_sdf import (
    EvalConfig,
    FitSDFConfig,
    FitSDFError,
    FitSDFResult,
    FitStep,
    SDFSamplesConfig,
    cache_path,
    cached_samples,
    encoding_config,
    fit_mesh_sdf,
    load_mesh,
    parse_overrides,
    resolve_fit_device,
)
from nsr.mesh.extract import save_mesh


@dataclass
class FitSDFArgs:
    """Fit an SDF field with one input encoding directly to a mesh and measure the fitted surface.

    The mesh is normalised into the unit sphere (farthest vertex at radius 0.9); Chamfer is reported
    in the mesh's own units and relative to its bounding-box diagonal; IoU is measured on uniform
    points of its bounding box; `seconds` is the training time alone.
    """

    mesh: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="MESH")]
    """Triangle mesh (OBJ, PLY, STL, OFF, GLB ...); need not be watertight."""
    encoding: str = "positional"
    """Encoding of the points: positional, fourier, hashgrid, nffb, stylemod-nffb (those installed)."""
    steps: int = 5000
    """Optimisation steps (stops earlier when --max-seconds runs out)."""
    max_seconds: float = 0.0
    """Training time budget in seconds (0 = no limit)."""
    batch_size: int = 16384
    """Points per step."""
    hidden_dim: int | None = None
    """SDF MLP width (default: 256 for positional/fourier, 64 for grid encodings)."""
    num_layers: int | None = None
    """SDF MLP hidden layers (default: 8 for positional/fourier, 2 for grid encodings)."""
    lr: float | None = None
    """Adam learning rate (default: 5e-4 positional/fourier, 1e-3 nffb/stylemod-nffb, 1e-2 hashgrid)."""
    loss: Literal["l1", "relative"] = "l1"
    """`l1` on values clamped to +-clamp (DeepSDF) or `relative` squared error (NFFB)."""
    clamp: float = 0.1
    """Clamp of the supervised distances, normalised units."""
    eikonal_weight: float = 0.0
    """Weight of an eikonal term (0 = off)."""
    encoding_arg: tuple[str, ...] = ()
    """Encoding config overrides KEY=VALUE, e.g. `--encoding-arg num_levels=8 log2_table_size=17`."""
    backend: str | None = None
    """Backend of grid encodings (torch, fused, tcnn, auto); shorthand for --encoding-arg backend=..."""
    gradient: Literal["auto", "analytic", "finite_difference"] = "auto"
    """Gradient for the eikonal term (auto: analytic when it is on; finite differences suit `fused`)."""
    seed: int = 0
    """Seeds the network and the batches (the sample pool has --samples.seed)."""
    device: str = "auto"
    """auto (CUDA if available), cpu, cuda, cuda:1 ..."""
    resolution: int = 256
    """Marching-cubes resolution over [-1, 1]^3 (normalised units)."""
    eval_samples: int = 200_000
    """Surface samples per mesh for the Chamfer distance."""
    keep_largest: bool = False
    """Keep only the largest component of the fitted surface before measuring it."""
    cache: Path | None = None
    """Folder caching the ground-truth sample pool (keyed by mesh bytes and sampling options)."""
    prepare_only: bool = False
    """Only compute the ground truth into --cache and exit (e.g. on a CPU with libigl, for a GPU run)."""
    gt_backend: Literal["auto", "torch", "libigl"] = "auto"
    """Signed-distance backend: libigl (fast, optional) or torch (exact brute force; fine on a GPU)."""
    out: Path | None = None
    """Also write the fitted surface as a PLY in mesh units."""
    json: bool = False
    """Print one JSON object (keys chamfer, chamfer_rel, iou, seconds, ...) instead of a table."""
    samples: SDFSamplesConfig = field(default_factory=SDFSamplesConfig)


def run(argv: list[str]) -> int:
    args = tyro.cli(FitSDFArgs, args=argv, prog="nsr fit-sdf")
    return friendly(lambda: _run(args))


def _run(args: FitSDFArgs) -> int:
    overrides = parse_overrides(args.encoding_arg)
    if args.backend is not None:
        overrides["backend"] = args.backend
    encoding = encoding_config(args.encoding, overrides)
    log = sys.stderr if args.json else sys.stdout

    if args.prepare_only:
        return _prepare(args, log)

    fit = FitSDFConfig(
        encoding=encoding,
        encoding_name=args.encoding,
        hidden_dim=args.hidden_dim,
        num_layers=args.num_layers,
        lr=args.lr,
        steps=args.steps,
        max_seconds=args.max_seconds,
        batch_size=args.batch_size,
        loss=args.loss,
        clamp=args.clamp,
        eikonal_weight=args.eikonal_weight,
        gradient=args.gradient,
        seed=args.seed,
        device=args.device,
    )
    eval_config = EvalConfig(
        resolution=args.resolution, num_samples=args.eval_samples, keep_largest=args.keep_largest
    )
    gt_bar = CountProgress("ground truth")
    mesh_bar = CountProgress("marching cubes")
    bars: list[tqdm] = []  # the fit's bar, opened at the first step (after the ground truth)

    def on_step(step: FitStep) -> None:
        if not bars:
            gt_bar.close()
            bars.append(
                tqdm(total=args.steps, desc=f"fit {args.encoding}", dynamic_ncols=True, smoothing=0.05)
            )
        bar = bars[0]
        bar.update(step.step - bar.n)
        bar.set_postfix(loss=f"{step.loss:.4g}", lr=f"{step.lr:.2g}", s=f"{step.seconds:.0f}", refresh=False)

    try:
        result, evaluation = fit_mesh_sdf(
            args.mesh,
            fit,
            args.samples,
            eval_config,
            cache_dir=args.cache,
            gt_backend=args.gt_backend,
            on_step=on_step,
            gt_progress=gt_bar,
            mesh_progress=mesh_bar,
        )
    finally:
        gt_bar.close()
        for bar in bars:
            bar.close()
        mesh_bar.close()
    if args.out is not None and evaluation.mesh is not None:
        save_mesh(evaluation.mesh, args.out)
        print(f"wrote {args.out} (mesh units)", file=log)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(format_table(result))
    return 0


def _prepare(args: FitSDFArgs, log) -> int:
    if args.cache is None:
        raise FitSDFError("--prepare-only needs --cache DIR (where the ground truth is written)")
    mesh = load_mesh(args.mesh)
    bar = CountProgress("ground truth")
    try:
        device = resolve_fit_device(args.device)
        samples = cached_samples(args.mesh, mesh, args.samples, args.cache, args.gt_backend, device, bar)
    finally:
        bar.close()
    path = cache_path(args.mesh, args.samples, args.cache)
    how = (
        "read"
        if samples.backend == "cache"
        else f"computed with {samples.backend} in {samples.seconds:.1f} s"
    )
    print(
        f"{path}: {len(samples.points)} training points, {len(samples.iou_points)} IoU points ({how})",
        file=log,
    )
    if args.json:
        print(json.dumps({"cache": str(path), "points": len(samples.points), "gt_backend": samples.backend}))
    return 0


def format_table(result: FitSDFResult) -> str:
    """The human summary: one row per number."""

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    rows = [
        ("mesh", result.mesh),
        ("encoding", result.encoding + (f" (backend {result.backend})" if result.backend else "")),
        ("network", f"{result.network}, {result.num_params:,} parameters, lr {result.lr:g}"),
        (
            "training",
            f"{result.steps} steps x {result.batch_size} points in {result.seconds:.1f} s on {result.device}",
        ),
        ("Chamfer (mesh units)", num(result.chamfer, ".6g")),
        (
            "Chamfer / bbox diagonal",
            "-" if result.chamfer_rel is None else f"{100 * result.chamfer_rel:.3f}%",
        ),
        ("IoU", f"{result.iou:.4f}"),
        ("F-score (0.5% diag)", num(result.fscore, ".4f")),
        ("normal consistency", num(result.normal_consistency, ".4f")),
        ("ground truth", f"{result.gt_backend}, {result.gt_seconds:.1f} s"),
    ]
    if result.error:
        rows.append(("extraction failed", result.error))
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)


__all__ = ["FitSDFArgs", "format_table", "run"]
