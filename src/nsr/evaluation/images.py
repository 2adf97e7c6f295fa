"""Evaluation of a run folder: image metrics on chosen views, geometry against a GT mesh or the DTU data.

Image metric conventions (docs/evaluation.md):
- colours are in [0, 1]; the ground truth is composited on the model's background colour outside the
  object mask (`gt * mask + background * (1 - mask)`), since the model renders that colour where it
  misses; for scenes whose images already have that background this changes nothing;
- `psnr`: over the full image against that composite; `psnr_mask`: over the mask's pixels only;
  `psnr_interior`: over the mask eroded by 3 pixels (the object without its silhouette);
- `psnr_aa`, `psnr_mask_aa`: the same of the anti-aliased render (K x K rays per silhouette pixel,
  `nsr.evaluation.antialias`); None when anti-aliasing is off. The saved renders are the anti-aliased ones;
- `ssim`: skimage / Wang et al. conventions (Gaussian window sigma 1.5, 11x11, data range 1, population
  covariance), mean over the image without its 5-pixel border; `ssim_mask`: the SSIM map averaged over
  the mask's pixels;
- `lpips`: AlexNet v0.1 on the full composite images mapped to [-1, 1]; None when the weights are absent.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from nsr.atomic import atomic_write
from nsr.data.formats import load_scene
from nsr.data.scene import SceneData
from nsr.engine.run import Run, RunError
from nsr.evaluation.antialias import AntialiasConfig, render_camera_antialiased
from nsr.metrics.image import psnr, ssim
from nsr.metrics.lpips import LPIPS, lpips_distance

IMAGE_CONVENTIONS = {
    "psnr": "-10 log10(MSE), [0, 1] colours, full image vs GT composited on the background colour",
    "psnr_mask": "as psnr, MSE over the pixels inside the object mask",
    "psnr_interior": "as psnr, MSE over the object mask eroded by 3 pixels (a disc): no silhouette pixels",
    "psnr_aa": "as psnr, of the anti-aliased render (K x K rays per silhouette pixel; antialias_samples)",
    "psnr_mask_aa": "as psnr_mask, of the anti-aliased render",
    "ssim": "Gaussian window sigma 1.5 (11x11), data range 1, population covariance (skimage, Wang et al.), "
    "mean without the 5-pixel border, full composited image",
    "ssim_mask": "SSIM map averaged over the pixels inside the object mask",
    "lpips": "AlexNet LPIPS v0.1, inputs in [-1, 1], full composited image",
}


@dataclass
class ViewMetrics:
    """Image metrics of one view."""

    view: int
    name: str
    psnr: float
    psnr_mask: float
    ssim: float
    ssim_mask: float
    lpips: float | None
    hit_ratio: float
    """Fraction of mask pixels whose ray hits the surface."""
    psnr_interior: float
    """PSNR over the mask eroded by `INTERIOR_EROSION` pixels (plain render)."""
    psnr_aa: float | None = None
    """PSNR of the anti-aliased render (None when anti-aliasing is off)."""
    psnr_mask_aa: float | None = None
    """In-mask PSNR of the anti-aliased render (None when anti-aliasing is off)."""
    supersampled: float = 0.0
    """Fraction of the pixels rendered with K x K rays."""


INTERIOR_EROSION = 3
"""Pixels by which the mask is eroded for `psnr_interior`."""


def interior_mask(mask: np.ndarray, pixels: int = INTERIOR_EROSION) -> np.ndarray:
    """(H, W) bool mask eroded by a disc of radius `pixels` (the image border does not erode: an object cut
    by the frame has no silhouette there)."""
    from scipy.ndimage import binary_erosion

    r = np.arange(-pixels, pixels + 1)
    disc = r[:, None] ** 2 + r[None, :] ** 2 <= pixels**2
    return binary_erosion(mask, structure=disc, border_value=1)


def scene_root(run: Run, data: str | Path | None) -> Path:
    """The scene folder of a run: `data` when given, else the path recorded in the run folder."""
    if data is not None:
        root = Path(data)
        if not root.is_dir():
            raise RunError(f"{root}: scene folder not found (--data)")
        return root
    info = json.loads((run.path / "scene.json").read_text())
    recorded = info.get("root") or (str(run.config.data.path) if run.config.data.path else None)
    # as given to `nsr train` (relative to where it ran, or to here), then resolved where it ran
    for candidate in (recorded, info.get("root_resolved")):
        if candidate is not None and Path(candidate).is_dir():
            return Path(candidate)
    raise RunError(
        f"{run.path}: the scene folder recorded for this run ({recorded}) does not exist here; "
        "pass it with --data DIR"
    )


def load_run_scene(run: Run, data: str | Path | None = None, downscale: float | None = None) -> SceneData:
    """The run's scene in the format it was trained from, at its training resolution (or at `downscale`,
    e.g. 1 for the full images), checked against what the run folder recorded."""
    root = scene_root(run, data)
    cfg = run.config.data
    if downscale is not None and not downscale > 0:
        raise RunError(f"--downscale must be > 0, got {downscale}")
    scale = cfg.downscale if downscale is None else downscale
    scene = load_scene(root, cfg.format, downscale=scale, camera_file=cfg.camera_file)
    info = json.loads((run.path / "scene.json").read_text())
    expected = (info.get("num_views"), info.get("height"), info.get("width"))
    found = (scene.num_views, scene.height, scene.width)
    if scale != cfg.downscale:  # another resolution: only the views must match
        expected, found = expected[:1], found[:1]
    if None not in expected and tuple(expected) != found:
        raise RunError(
            f"{root}: {found[0]} views of {found[2]}x{found[1]} but the run was trained on "
            f"{expected[0]} views of {expected[2]}x{expected[1]} (wrong --data folder?)"
        )
    return scene


def select_views(run: Run, split: str) -> list[int]:
    """`test` (held-out), `train` or `all` views of a run."""
    if split == "test":
        if not run.test_views:
            raise RunError(
                f"{run.path}: the run holds out no view (trained without --holdout); use --split train|all"
            )
        return list(run.test_views)
    if split == "train":
        return list(run.train_views)
    if split == "all":
        return sorted(set(run.train_views) | set(run.test_views))
    raise ValueError(f"unknown split {split!r} (test, train or all)")


def composite(image: np.ndarray, mask: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(H, W, 3) image with the pixels outside the (H, W) mask replaced by the background colour."""
    return np.where(mask[..., None], image, background[None, None, :]).astype(np.float64)


def error_map(pred: np.ndarray, target: np.ndarray, vmax: float = 0.25) -> np.ndarray:
    """(H, W, 3) uint8 heat map of the mean absolute colour error, black (0) -> red -> yellow -> white (>= vmax)."""
    t = np.clip(np.abs(pred - target).mean(-1) / vmax, 0, 1)
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], -1)
    return (rgb * 255 + 0.5).astype(np.uint8)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def save_png(image: np.ndarray, path: Path) -> Path:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def evaluate_images(
    model: torch.nn.Module,
    scene: SceneData,
    views: list[int],
    lpips_model: LPIPS | None = None,
    out_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    antialias: AntialiasConfig | None = None,
) -> list[ViewMetrics]:
    """Render `views` (plain and anti-aliased as `antialias` says, default `AntialiasConfig()`) and measure
    them (module docstring). With `out_dir`, writes `renders/view_XXX.png` = render (anti-aliased when on)
    | ground truth (composited) | error map, one row per view."""
    antialias = antialias or AntialiasConfig()
    background = model.background_rgb
    background = None if background is None else np.asarray(background, dtype=np.float64)
    rows = []
    if progress is not None:
        progress(0, len(views))
    for done, index in enumerate(views):
        h, w = scene.height, scene.width
        both = render_camera_antialiased(model, scene.intrinsics[index], scene.c2w[index], h, w, antialias)
        out = both.plain
        pred = out.rgb.reshape(h, w, 3).double().cpu().numpy().clip(0, 1)
        pred_aa = both.antialiased.rgb.reshape(h, w, 3).double().cpu().numpy().clip(0, 1)
        hit = out.hit.reshape(h, w).cpu().numpy()
        mask = scene.masks[index]
        gt = scene.images[index] if background is None else composite(scene.images[index], mask, background)
        has_mask = bool(mask.any())
        interior = interior_mask(mask)
        on = antialias.enabled
        rows.append(
            ViewMetrics(
                view=index,
                name=scene.image_names[index] if scene.image_names else str(index),
                psnr=psnr(pred, gt),
                psnr_mask=psnr(pred, gt, mask) if has_mask else math.nan,
                ssim=ssim(pred, gt),
                ssim_mask=ssim(pred, gt, mask) if has_mask else math.nan,
                lpips=lpips_distance(lpips_model, pred, gt) if lpips_model is not None else None,
                hit_ratio=float((hit & mask).sum() / max(mask.sum(), 1)),
                psnr_interior=psnr(pred, gt, interior) if interior.any() else math.nan,
                psnr_aa=psnr(pred_aa, gt) if on else None,
                psnr_mask_aa=(psnr(pred_aa, gt, mask) if has_mask else math.nan) if on else None,
                supersampled=float(both.supersampled.float().mean()),
            )
        )
        if out_dir is not None:
            shown = pred_aa if on else pred
            row = np.concatenate([to_uint8(shown), to_uint8(gt), error_map(shown, gt)], axis=1)
            save_png(row, out_dir / "renders" / f"view_{index:03d}.png")
        if progress is not None:
            progress(done + 1, len(views))
    return rows


def evaluate_views(
    model: torch.nn.Module,
    scene: SceneData,
    views: list[int],
    out_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    antialias: AntialiasConfig | None = None,
) -> dict:
    """Render `views`, measure them (`evaluate_images`) and return the means (`summarise`): `psnr`,
    `psnr_mask`, `ssim`, ... and `num_views`. With `out_dir`, the renders go to `out_dir/renders/`."""
    return summarise(
        evaluate_images(model, scene, views, out_dir=out_dir, progress=progress, antialias=antialias)
    )


def save_image_evaluation(rows: list[ViewMetrics], out_dir: Path, title: str, **extra) -> dict:
    """Write `views.csv` and `metrics.png` into `out_dir` and return the summary (`summarise`) with `extra`
    keys (split, resolution, anti-aliasing, ...) and the conventions."""
    summary = summarise(rows)
    summary.update(extra)
    summary["conventions"] = IMAGE_CONVENTIONS
    write_views_csv(rows, out_dir / "views.csv")
    plot_views(rows, out_dir / "metrics.png", title)
    return summary


METRIC_KEYS = (
    "psnr",
    "psnr_mask",
    "ssim",
    "ssim_mask",
    "lpips",
    "hit_ratio",
    "psnr_interior",
    "psnr_aa",
    "psnr_mask_aa",
    "supersampled",
)


def summarise(rows: list[ViewMetrics]) -> dict:
    """Mean, std (population), min and max of each metric over views; `lpips` None when unavailable."""
    summary: dict = {"num_views": len(rows), "views": [r.view for r in rows]}
    for key in METRIC_KEYS:
        values = [getattr(r, key) for r in rows]
        if any(v is None for v in values) or not values:
            summary[key] = None
            continue
        arr = np.asarray(values, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        summary[key] = float(finite.mean()) if len(finite) else None
        summary[f"{key}_std"] = float(finite.std()) if len(finite) else None
        summary[f"{key}_min"] = float(finite.min()) if len(finite) else None
        summary[f"{key}_max"] = float(finite.max()) if len(finite) else None
    return summary


def write_views_csv(rows: list[ViewMetrics], path: Path) -> Path:
    buffer = io.StringIO()
    fields = list(asdict(rows[0]).keys()) if rows else ["view"]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    return atomic_write(path, lambda f: f.write(buffer.getvalue().encode()))


def write_json(data: dict, path: Path) -> Path:
    text = json.dumps(data, indent=2, allow_nan=True)
    return atomic_write(path, lambda f: f.write(text.encode()))


def plot_views(rows: list[ViewMetrics], path: Path, title: str = "") -> Path:
    """A PNG with one bar panel per metric (PSNR / PSNR in mask, SSIM, LPIPS) over views, drawn with PIL."""
    from PIL import Image, ImageDraw

    panels = [
        ("PSNR (dB)", "psnr"),
        ("PSNR in mask (dB)", "psnr_mask"),
        ("PSNR in mask, anti-aliased (dB)", "psnr_mask_aa"),
        ("SSIM", "ssim"),
        ("LPIPS", "lpips"),
    ]
    panels = [(label, key) for label, key in panels if rows and getattr(rows[0], key) is not None]
    width, panel_h, margin = max(480, 40 + 28 * len(rows)), 170, 48
    image = Image.new("RGB", (width, 30 + panel_h * len(panels)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), title, fill="black")
    for p, (label, key) in enumerate(panels):
        top = 30 + p * panel_h
        values = np.asarray([getattr(r, key) for r in rows], dtype=np.float64)
        finite = values[np.isfinite(values)]
        high = float(finite.max()) if len(finite) else 1.0
        high = high * 1.1 if high > 0 else 1.0
        x0, y0, y1 = margin, top + 20, top + panel_h - 24
        draw.text(
            (8, top + 2),
            f"{label}  mean {np.nanmean(finite) if len(finite) else float('nan'):.4g}",
            fill="black",
        )
        draw.line([(x0, y1), (width - 10, y1)], fill="black")
        draw.line([(x0, y0), (x0, y1)], fill="black")
        draw.text((4, y0 - 4), f"{high:.3g}", fill="gray")
        draw.text((4, y1 - 10), "0", fill="gray")
        step = min((width - 10 - x0) / max(len(rows), 1), 40)
        for i, (r, v) in enumerate(zip(rows, values)):
            bx = x0 + i * step + 2
            if np.isfinite(v):
                bh = (y1 - y0) * max(v, 0) / high
                draw.rectangle([bx, y1 - bh, bx + step - 4, y1], fill=(70, 110, 190))
            draw.text((bx, y1 + 4), str(r.view), fill="black")
        if len(finite):
            mean_y = y1 - (y1 - y0) * float(finite.mean()) / high
            draw.line([(x0, mean_y), (width - 10, mean_y)], fill=(220, 60, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))
