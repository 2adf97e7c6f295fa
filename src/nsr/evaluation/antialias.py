"""Anti-aliased renders of any model: several rays per silhouette pixel.

A surface renderer (IDR) sends one ray through each pixel centre, so every pixel is either object or
background and silhouettes are staircases; a photo's silhouette pixels mix both. Volume renderers soften
the edge but still sample it once per pixel. Comparing such renders with photos penalises every
silhouette pixel (the held-out PSNR "in the mask" then measures the staircase more than the model).

`render_camera_antialiased` renders a camera once per pixel centre (`Model.render_camera`), marks the
pixels whose hit (or opacity) differs from one of their 8 neighbours' -- the silhouette, both sides of
it -- and renders those again with K x K rays on a regular grid of sub-pixel positions, averaging colour
and opacity: the colour of a silhouette pixel is then its coverage-weighted mix of object and background.
Built only on `Model.render`, so every model gets it. `AntialiasConfig.everywhere` supersamples every
pixel (texture edges too), at K^2 times the cost.

A straight edge through a pixel crosses the square of some 8-neighbour's centre on the other side, so
every pixel the silhouette crosses is marked unless the object is thinner than a pixel between centres
(then `everywhere`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nsr.cameras.rays import pixel_grid, pixel_rays
from nsr.models import Model, RenderOutputs


class AntialiasError(ValueError):
    """Anti-aliasing settings that cannot be used (one line for the user)."""


@dataclass
class AntialiasConfig:
    """How evaluation views and videos are anti-aliased."""

    samples: int = 4
    """K: a supersampled pixel gets K x K rays on a regular sub-pixel grid (1 = one ray per pixel, off)."""
    everywhere: bool = False
    """Supersample every pixel, not only the silhouette's (K^2 times the rays)."""
    threshold: float = 0.1
    """Besides a change of hit, an opacity difference to a neighbour above this marks a pixel (volume
    renderers' soft silhouettes)."""

    @property
    def enabled(self) -> bool:
        return self.samples > 1

    def validate(self) -> AntialiasConfig:
        if self.samples < 1:
            raise AntialiasError(f"--antialias must be >= 1 (K x K rays per pixel), got {self.samples}")
        return self


@dataclass
class AntialiasedRender:
    """A camera rendered once per pixel centre and anti-aliased; (H*W, ...) tensors, row-major."""

    plain: RenderOutputs
    """One ray through each pixel centre."""
    antialiased: RenderOutputs
    """`rgb` and `opacity`: the mean over the K x K rays of supersampled pixels (the plain value elsewhere);
    `depth` and `normals`: the centre ray's (geometric quantities are not averaged across an edge)."""
    supersampled: torch.Tensor
    """(H*W,) bool, the pixels rendered with K x K rays."""


def subpixel_offsets(samples: int) -> torch.Tensor:
    """(K*K, 2) offsets (x, y) in pixels of a regular K x K grid of positions inside a pixel (cell centres,
    in (-0.5, 0.5)); pixel centres are at integer coordinates."""
    t = (torch.arange(samples, dtype=torch.float32) + 0.5) / samples - 0.5
    ys, xs = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)


def silhouette_pixels(opacity: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """(H, W) opacity -> (H, W) bool: pixels whose hit (opacity > 0.5) differs from that of one of their 8
    neighbours, or whose opacity differs from a neighbour's by more than `threshold` (image borders count
    as the pixel itself)."""
    hit = (opacity > 0.5).float()
    marked = torch.zeros_like(opacity, dtype=torch.bool)
    for channel, tolerance in ((hit, 0.5), (opacity.float(), threshold)):
        padded = F.pad(channel[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
        h, w = channel.shape
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                if dy == dx == 1:
                    continue
                marked |= (padded[dy : dy + h, dx : dx + w] - channel).abs() > tolerance
    return marked


def render_camera_antialiased(
    model: Model,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    height: int,
    width: int,
    config: AntialiasConfig | None = None,
    chunk_size: int | None = None,
) -> AntialiasedRender:
    """Render a (3, 3) K / (4, 4) camera-to-world camera (normalised frame), anti-aliased as `config` says
    (module docstring), in eval mode (the model's previous mode is restored)."""
    config = (config or AntialiasConfig()).validate()
    chunk_size = chunk_size or model.eval_chunk_size
    plain = model.render_camera(intrinsics, c2w, height, width, chunk_size)
    if not config.enabled:
        none = torch.zeros(height * width, dtype=torch.bool, device=plain.rgb.device)
        return AntialiasedRender(plain=plain, antialiased=plain, supersampled=none)
    if config.everywhere:
        marked = torch.ones(height * width, dtype=torch.bool, device=plain.rgb.device)
    else:
        marked = silhouette_pixels(plain.opacity.reshape(height, width), config.threshold).reshape(-1)
    rgb, opacity = plain.rgb.clone(), plain.opacity.clone()
    pixels = marked.nonzero().squeeze(1)
    if pixels.numel():
        device = plain.rgb.device
        k = torch.as_tensor(intrinsics, dtype=torch.float32, device=device)
        pose = torch.as_tensor(c2w, dtype=torch.float32, device=device)
        offsets = subpixel_offsets(config.samples).to(device)
        per_pixel = len(offsets)
        uv_all = pixel_grid(height, width, device)
        block = max(1, chunk_size // per_pixel)  # pixels per batch of rays
        was_training = model.training
        model.eval()
        try:
            for part in pixels.split(block):
                uv = (uv_all[part, None, :] + offsets[None]).reshape(-1, 2)
                origins, directions = pixel_rays(k, pose, uv)
                out = model.render(origins, directions, chunk_size)
                rgb[part] = out.rgb.reshape(len(part), per_pixel, 3).mean(1)
                opacity[part] = out.opacity.reshape(len(part), per_pixel).mean(1)
        finally:
            model.train(was_training)
    antialiased = RenderOutputs(rgb=rgb, opacity=opacity, depth=plain.depth, normals=plain.normals)
    return AntialiasedRender(plain=plain, antialiased=antialiased, supersampled=marked)
