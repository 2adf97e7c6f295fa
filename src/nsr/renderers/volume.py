"""NeuS volume rendering of an SDF: sampling, hierarchical up-sampling, SDF -> opacity, compositing.

All functions are batched over rays with fixed shapes (no per-ray Python loops, no data-dependent
control flow, no host synchronisation), and take the fields as callables at call time:

- `sdf_fn(x (M, 3)) -> (M,)`: the signed distance, called without gradients to place samples;
- `field_fn(points (M, 3), view_dirs (M, 3)) -> FieldSamples`: SDF, its spatial gradient and colour at the
  final samples, keeping the graph for training;
- `background_fn(points (M, 4), view_dirs (M, 3)) -> (density (M,), rgb (M, 3))`: optional NeRF++
  background beyond the bounding sphere, in inverted-sphere coordinates (`inverted_sphere`).

A ray's part inside the bounding sphere, [near, far], is cut into sections by sorted boundaries; the
field is evaluated at each section's midpoint and NeuS's unbiased opacity of the section is computed from
the SDF there and the (annealed) cosine between ray and gradient (Wang et al. 2021, eq. 13):

    f_prev, f_next = f(mid) -/+ cos * delta / 2,    alpha = max(0, (Phi_s(f_prev) - Phi_s(f_next)) / Phi_s(f_prev))

with Phi_s(x) = sigmoid(s x), s = `inv_s`. The renderer computes log(1 - alpha) = log Phi_s(f_next) -
log Phi_s(f_prev) directly (stable where both are tiny deep inside the object), and the transmittance as
the exponential of its running sum. See docs/rendering.md for the derivation and the parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from nsr import checks
from nsr.renderers.occupancy import OccupancyGrid, OccupancyGridConfig
from nsr.renderers.sphere_tracing import intersect_sphere


@dataclass
class FieldSamples:
    """What `field_fn` returns for M sample points."""

    sdf: torch.Tensor
    """(M,) signed distance."""
    gradient: torch.Tensor
    """(M, 3) spatial gradient of the SDF (not normalised: the eikonal loss reads its length)."""
    rgb: torch.Tensor
    """(M, 3) colour in [0, 1] seen along the view direction."""
    laplacian: torch.Tensor | None = None
    """(M,) Laplacian of the SDF, when the model trains a curvature loss (else None)."""


SDFFunction = Callable[[torch.Tensor], torch.Tensor]
FieldFunction = Callable[[torch.Tensor, torch.Tensor], FieldSamples]
BackgroundFunction = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class VolumeRendererConfig:
    """NeuS volume rendering (defaults: NeuS's published values, without its 64 + 64 split of the background)."""

    bounding_radius: float = 1.0
    """Radius of the sphere (normalised frame) that contains the object; samples lie inside it."""
    num_samples: int = 64
    """Coarse sections per ray, evenly spaced over [near, far]."""
    num_importance: int = 64
    """Sections added by hierarchical up-sampling (0 = coarse samples only); a multiple of
    `up_sample_steps`."""
    up_sample_steps: int = 4
    """Up-sampling rounds; round i adds num_importance / up_sample_steps boundaries drawn from the
    weights of the current sections at a fixed inverse std `up_sample_inv_s * 2^i` (NeuS)."""
    up_sample_inv_s: float = 64.0
    """Inverse standard deviation of the first up-sampling round."""
    perturb: bool = True
    """Jitter the coarse boundaries (and the background samples) within their strata when rendering for
    training (`render(..., training=True)`); evaluation renders are deterministic."""
    occupancy: OccupancyGridConfig = field(default_factory=OccupancyGridConfig)
    """Empty-space skipping: the model builds the grid (`occupancy.build(bounding_radius)`), updates it
    and passes it to `render`."""
    background: Literal["none", "constant", "field"] = "none"
    """What rays see beyond the foreground: `none` (black, i.e. the foreground colour alone),
    `constant` (a colour passed to `render`, e.g. a masked scene's background colour), or `field`
    (a NeRF++ background model passed to `render`, for unmasked scenes)."""
    background_samples: int = 32
    """Samples of the background field per ray, evenly spaced in inverse depth beyond the sphere's exit."""
    background_far_ratio: float = 1000.0
    """The background samples reach this multiple of the depth of the sphere's exit; the last sample
    stands for everything beyond (it is as opaque as its density allows: an infinite section)."""
    chunk_size: int = 4096
    """Rays an evaluation renders at once (`render_chunked`; the NeuS model's `render`, `nsr eval`, validation
    views): what bounds its memory."""

    def validate(self) -> None:
        checks.positive("bounding_radius", self.bounding_radius)
        checks.positive("num_samples", self.num_samples)
        checks.non_negative("num_importance", self.num_importance, "0 = coarse samples only")
        if self.num_importance:
            checks.positive("up_sample_steps", self.up_sample_steps)
            if self.num_importance % self.up_sample_steps:
                raise checks.InvalidValue(
                    "num_importance",
                    self.num_importance,
                    f"must be a multiple of up_sample_steps ({self.up_sample_steps})",
                )
        checks.positive("up_sample_inv_s", self.up_sample_inv_s)
        if self.background == "field":
            checks.positive("background_samples", self.background_samples)
        checks.at_least("background_far_ratio", self.background_far_ratio, 1.0)
        checks.positive("chunk_size", self.chunk_size)


@dataclass
class VolumeSamples:
    """Per-sample tensors of a training render: N rays of S = num_samples + num_importance sections."""

    depths: torch.Tensor
    """(N, S) depth of each section's midpoint (where the field was evaluated), increasing."""
    deltas: torch.Tensor
    """(N, S) length of each section."""
    weights: torch.Tensor
    """(N, S) compositing weights of the foreground (sum = `opacity`)."""
    sdf: torch.Tensor
    """(N, S) SDF at the midpoints."""
    gradients: torch.Tensor
    """(N, S, 3) SDF gradients at the midpoints (for the eikonal loss)."""
    inside: torch.Tensor
    """(N, S) bool, the midpoint lies strictly inside the bounding sphere (the eikonal/curvature mask:
    rays that miss the sphere have empty sections at their closest approach)."""
    laplacian: torch.Tensor | None = None
    """(N, S) Laplacian of the SDF at the midpoints, when `field_fn` returns one."""


@dataclass
class VolumeRenderOutput:
    """Per-ray outputs for N rays."""

    rgb: torch.Tensor
    """(N, 3) composited colour: foreground + (1 - opacity) * background colour."""
    opacity: torch.Tensor
    """(N,) foreground weight sum in [0, 1] (what the mask loss compares with the mask)."""
    depth: torch.Tensor
    """(N,) expected foreground depth *normalised by the opacity*, sum(w t) / sum(w): the depth of the
    surface the ray sees, meaningful where opacity is high; 0 where the opacity is below 1e-6."""
    normals: torch.Tensor
    """(N, 3) weight-averaged unit gradients, normalised (zero where nothing is seen)."""
    inv_s: torch.Tensor
    """0-d tensor, the inverse standard deviation used (clamped to [1e-6, 1e6])."""
    background_rgb: torch.Tensor | None = None
    """(N, 3) colour of the background alone (before the foreground's transmittance), or None."""
    foreground: torch.Tensor | None = None
    """(N, 3) the foreground's colour alone, sum(w c) (None from `render_chunked`)."""
    samples: VolumeSamples | None = None
    """Per-sample tensors (None from `render_chunked`)."""


# ---------------------------------------------------------------------------------------- building blocks
def neus_alpha(
    sdf: torch.Tensor,
    true_cos: torch.Tensor,
    deltas: torch.Tensor,
    inv_s: torch.Tensor,
    cos_anneal_ratio: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """NeuS's discrete opacity of sections from the SDF at their midpoints.

    The SDF at a section's ends is estimated from the midpoint value and the cosine between the ray and
    the gradient, annealed from (cos - 1) / 2 (every section absorbs a little: helps early training) to
    min(cos, 0) (exact for a plane: unbiased) as `cos_anneal_ratio` goes from 0 to 1:
    iter_cos = -(relu(-cos/2 + 1/2) (1 - r) + relu(-cos) r).

    Args:
        sdf, true_cos, deltas: (...) SDF at the midpoints, dot(ray direction, gradient), section lengths.
        inv_s: scalar tensor s (> 0).

    Returns:
        alpha (...) in [0, 1] and log(1 - alpha) (...) <= 0 (computed directly, not from alpha).
    """
    r = cos_anneal_ratio
    iter_cos = -(F.relu(-true_cos * 0.5 + 0.5) * (1.0 - r) + F.relu(-true_cos) * r)
    prev_sdf = sdf - iter_cos * deltas * 0.5
    next_sdf = sdf + iter_cos * deltas * 0.5
    return _alpha_from_section_ends(prev_sdf, next_sdf, inv_s)


def _alpha_from_section_ends(prev_sdf, next_sdf, inv_s):
    # 1 - alpha = Phi(s f_next) / Phi(s f_prev); f_next <= f_prev by construction, so the log is <= 0.
    log_keep = (F.logsigmoid(next_sdf * inv_s) - F.logsigmoid(prev_sdf * inv_s)).clamp_max(0.0)
    return -torch.expm1(log_keep), log_keep


def composite_weights(alpha: torch.Tensor, log_keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights alpha_i T_i with T_i = prod_{j<i} (1 - alpha_j), from (N, S) alpha and log(1 - alpha).

    Returns:
        weights (N, S) and the transmittance past the last sample (N,) (= 1 - sum of the weights).
    """
    log_t = torch.cumsum(log_keep, dim=-1)
    exclusive = torch.cat([torch.zeros_like(log_t[:, :1]), log_t[:, :-1]], dim=-1)
    return alpha * torch.exp(exclusive), torch.exp(log_t[:, -1])


def sample_pdf(
    bins: torch.Tensor, weights: torch.Tensor, count: int, deterministic: bool = True
) -> torch.Tensor:
    """Inverse-transform samples of the piecewise-constant density given by section weights.

    Args:
        bins: (N, K + 1) sorted section boundaries.
        weights: (N, K) non-negative weights of the sections (a small floor keeps empty rays uniform).
        count: samples per ray.
        deterministic: evenly spaced quantiles (NeuS's up-sampling) instead of random ones.

    Returns:
        (N, count) depths, sorted.
    """
    weights = weights + 1e-5
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)  # (N, K + 1)
    n = bins.shape[0]
    if deterministic:
        u = torch.linspace(0.5 / count, 1 - 0.5 / count, count, device=bins.device, dtype=bins.dtype)
        u = u.expand(n, count).contiguous()
    else:
        u = torch.rand(n, count, device=bins.device, dtype=bins.dtype)
    above = torch.searchsorted(cdf, u, right=True).clamp(max=cdf.shape[-1] - 1)
    below = (above - 1).clamp_min(0)
    cdf_lo, cdf_hi = cdf.gather(1, below), cdf.gather(1, above)
    bin_lo, bin_hi = bins.gather(1, below), bins.gather(1, above)
    denom = cdf_hi - cdf_lo
    denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)
    return bin_lo + (u - cdf_lo) / denom * (bin_hi - bin_lo)


def inverted_sphere(points: torch.Tensor, radius: float) -> torch.Tensor:
    """NeRF++'s parametrisation of the space outside a sphere: x -> (x / |x|, R / |x|).

    Args:
        points: (M, 3) points at distance >= R from the origin (closer points are treated as on the sphere).

    Returns:
        (M, 4): the unit direction of the point and its inverse distance scaled to (0, 1].
    """
    dist = points.norm(dim=-1, keepdim=True).clamp_min(radius)
    return torch.cat([points / dist, radius / dist], dim=-1)


# ---------------------------------------------------------------------------------------- the renderer
class VolumeRenderer:
    """Renders rays through an SDF with NeuS's volume rendering."""

    def __init__(self, config: VolumeRendererConfig) -> None:
        checks.validate_config(config)
        self.config = config

    def ray_bounds(
        self, origins: torch.Tensor, directions: torch.Tensor, occupancy: OccupancyGrid | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Where each ray's samples go.

        Returns:
            near (N,), far (N,): the sampled span (the chord of the bounding sphere, shrunk to the occupied
            cells when a grid is given; near = far at the closest approach for rays that miss the
            sphere), sphere_far (N,) the exit from the sphere, and hits (N,) bool, the ray meets it.
        """
        near, far, hits = intersect_sphere(origins, directions, self.config.bounding_radius)
        sphere_far = far
        if occupancy is not None:
            near, far, _ = occupancy.ray_span(origins, directions, near, far)
        return near, far, sphere_far, hits

    @torch.no_grad()
    def sample(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        sdf_fn: SDFFunction,
        near: torch.Tensor,
        far: torch.Tensor,
        training: bool = False,
    ) -> torch.Tensor:
        """Section boundaries: stratified coarse ones over [near, far], then NeuS's up-sampling.

        Returns:
            (N, num_samples + num_importance + 1) sorted boundaries from near to far.
        """
        cfg = self.config
        n, s = origins.shape[0], cfg.num_samples
        u = torch.linspace(0, 1, s + 1, device=origins.device, dtype=origins.dtype).expand(n, s + 1)
        if training and cfg.perturb and s > 1:
            jitter = (torch.rand(n, s - 1, device=origins.device, dtype=origins.dtype) - 0.5) / s
            u = torch.cat([u[:, :1], u[:, 1:-1] + jitter, u[:, -1:]], dim=1)
        bounds = near[:, None] + (far - near)[:, None] * u
        if cfg.num_importance == 0:
            return bounds
        sdf = self._sdf_at(sdf_fn, origins, directions, bounds)
        per_step = cfg.num_importance // cfg.up_sample_steps
        for i in range(cfg.up_sample_steps):
            new = self._up_sample(bounds, sdf, per_step, cfg.up_sample_inv_s * 2**i)
            bounds, order = torch.sort(torch.cat([bounds, new], dim=1), dim=1)
            if i + 1 < cfg.up_sample_steps:
                new_sdf = self._sdf_at(sdf_fn, origins, directions, new)
                sdf = torch.cat([sdf, new_sdf], dim=1).gather(1, order)
        return bounds

    @staticmethod
    def _sdf_at(sdf_fn, origins, directions, depths):
        points = origins[:, None, :] + directions[:, None, :] * depths[..., None]
        return sdf_fn(points.reshape(-1, 3)).view(depths.shape)

    @staticmethod
    def _up_sample(bounds, sdf, count, inv_s):
        """NeuS's up-sampling: weights of the sections from the SDF at their ends (the cosine estimated from
        the two ends, the smaller of its own and the previous section's, never positive), then `count`
        deterministic quantiles of them."""
        prev_sdf, next_sdf = sdf[:, :-1], sdf[:, 1:]
        deltas = bounds[:, 1:] - bounds[:, :-1]
        mid_sdf = (prev_sdf + next_sdf) * 0.5
        cos = (next_sdf - prev_sdf) / (deltas + 1e-5)
        prev_cos = torch.cat([torch.zeros_like(cos[:, :1]), cos[:, :-1]], dim=1)
        cos = torch.minimum(prev_cos, cos).clamp(-1e3, 0.0)
        alpha, log_keep = _alpha_from_section_ends(
            mid_sdf - cos * deltas * 0.5, mid_sdf + cos * deltas * 0.5, inv_s
        )
        weights, _ = composite_weights(alpha, log_keep)
        return sample_pdf(bounds, weights, count, deterministic=True)

    def render(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        sdf_fn: SDFFunction,
        field_fn: FieldFunction,
        inv_s: torch.Tensor,
        cos_anneal_ratio: float = 1.0,
        *,
        occupancy: OccupancyGrid | None = None,
        background_fn: BackgroundFunction | None = None,
        background_color: torch.Tensor | None = None,
        training: bool = False,
    ) -> VolumeRenderOutput:
        """Render N rays.

        Args:
            origins, directions: (N, 3) rays, directions of unit length (depths are distances). They may
                carry gradients (trained cameras): the final sample points are differentiable in them.
            sdf_fn: (M, 3) -> (M,) SDF, called without gradients to place the samples.
            field_fn: (points (M, 3), view_dirs (M, 3)) -> FieldSamples at the final samples. It must
                return gradients also when called under `torch.no_grad()` (`SDFField.with_gradient` does).
            inv_s: scalar tensor, NeuS's learned inverse standard deviation (`SingleVariance`).
            cos_anneal_ratio: 0 -> 1 over the start of training (see `neus_alpha`).
            occupancy: a grid whose occupied span limits each ray's samples (or None).
            background_fn: the background model when `config.background == "field"`.
            background_color: (3,) colour, or (N, 3) colours per ray, when `config.background == "constant"`.
            training: jitter the samples (when `config.perturb`).
        """
        background = self._check_background(background_fn, background_color)
        n = origins.shape[0]
        near, far, sphere_far, hits = self.ray_bounds(origins.detach(), directions.detach(), occupancy)
        bounds = self.sample(origins.detach(), directions.detach(), sdf_fn, near, far, training)
        depths = (bounds[:, 1:] + bounds[:, :-1]) * 0.5
        deltas = bounds[:, 1:] - bounds[:, :-1]
        s = depths.shape[1]
        points = origins[:, None, :] + directions[:, None, :] * depths[..., None]  # (N, S, 3)
        view_dirs = directions[:, None, :].expand(n, s, 3)
        out = field_fn(points.reshape(-1, 3), view_dirs.reshape(-1, 3))
        sdf = out.sdf.view(n, s)
        gradients = out.gradient.view(n, s, 3)
        colours = out.rgb.view(n, s, 3)

        inv_s = inv_s.reshape(()).clamp(1e-6, 1e6)
        true_cos = (view_dirs * gradients).sum(-1)
        alpha, log_keep = neus_alpha(sdf, true_cos, deltas, inv_s, cos_anneal_ratio)
        weights, remaining = composite_weights(alpha, log_keep)
        opacity = weights.sum(-1)
        rgb = foreground = (weights[..., None] * colours).sum(1)
        seen = opacity > 1e-6
        depth = torch.where(
            seen, (weights * depths).sum(-1) / opacity.clamp_min(1e-6), torch.zeros_like(opacity)
        )
        normals = (weights[..., None] * F.normalize(gradients, dim=-1)).sum(1)
        normals = F.normalize(normals, dim=-1)

        background_rgb = None
        if background == "field":
            background_rgb = self._render_background(
                origins, directions, sphere_far, hits, background_fn, training
            )
        elif background == "constant":
            background_rgb = background_color.to(rgb).expand(n, 3)
        if background_rgb is not None:
            rgb = rgb + remaining[:, None] * background_rgb

        radius = self.config.bounding_radius
        inside = points.detach().norm(dim=-1) < radius
        samples = VolumeSamples(
            depths=depths,
            deltas=deltas,
            weights=weights,
            sdf=sdf,
            gradients=gradients,
            inside=inside,
            laplacian=None if out.laplacian is None else out.laplacian.view(n, s),
        )
        return VolumeRenderOutput(
            rgb=rgb,
            opacity=opacity,
            depth=depth,
            normals=normals,
            inv_s=inv_s,
            background_rgb=background_rgb,
            foreground=foreground,
            samples=samples,
        )

    def _check_background(self, background_fn, background_color) -> str:
        kind = self.config.background
        if kind == "field" and background_fn is None:
            raise ValueError("the renderer's background is 'field' but no background_fn was given")
        if kind == "constant" and background_color is None:
            raise ValueError("the renderer's background is 'constant' but no background_color was given")
        return kind

    def background_depths(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        sphere_far: torch.Tensor,
        hits: torch.Tensor,
        training: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Depths of the background samples, evenly spaced in inverse depth beyond the bounding sphere.

        A ray that meets the sphere starts at its exit; one that misses it at the farther of its closest
        approach to the centre and the camera's distance to the sphere (always > 0 outside the sphere).
        With t0 that start and u stratified in [1 / far_ratio, 1] (jittered within strata in training),
        the depths are t0 / u, increasing.

        Returns:
            depths (N, K) and section lengths (N, K): the distance to the next sample, the last one
            infinite (1e10).
        """
        cfg = self.config
        n, k = origins.shape[0], cfg.background_samples
        radius = cfg.bounding_radius
        closest = -(origins * directions).sum(-1)
        outside_gap = origins.norm(dim=-1) - radius
        start = torch.where(hits, sphere_far, torch.maximum(closest, outside_gap)).clamp_min(1e-3 * radius)
        u_min = 1.0 / cfg.background_far_ratio
        edges = torch.linspace(1.0, u_min, k + 1, device=origins.device, dtype=origins.dtype)
        if training and cfg.perturb:
            frac = torch.rand(n, k, device=origins.device, dtype=origins.dtype)
        else:
            frac = torch.full((n, k), 0.5, device=origins.device, dtype=origins.dtype)
        u = edges[:-1] + (edges[1:] - edges[:-1]) * frac  # decreasing
        depths = start[:, None] / u
        deltas = torch.cat([depths[:, 1:] - depths[:, :-1], torch.full_like(depths[:, :1], 1e10)], dim=1)
        return depths, deltas

    def _render_background(self, origins, directions, sphere_far, hits, background_fn, training):
        n = origins.shape[0]
        depths, deltas = self.background_depths(
            origins.detach(), directions.detach(), sphere_far, hits, training
        )
        k = depths.shape[1]
        points = origins[:, None, :] + directions[:, None, :] * depths[..., None]
        coords = inverted_sphere(points.reshape(-1, 3), self.config.bounding_radius)
        view_dirs = directions[:, None, :].expand(n, k, 3).reshape(-1, 3)
        density, colours = background_fn(coords, view_dirs)
        log_keep = -density.view(n, k) * deltas
        weights, _ = composite_weights(-torch.expm1(log_keep), log_keep)
        return (weights[..., None] * colours.view(n, k, 3)).sum(1)

    def render_chunked(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        sdf_fn: SDFFunction,
        field_fn: FieldFunction,
        inv_s: torch.Tensor,
        cos_anneal_ratio: float = 1.0,
        *,
        occupancy: OccupancyGrid | None = None,
        background_fn: BackgroundFunction | None = None,
        background_color: torch.Tensor | None = None,
        chunk_size: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> VolumeRenderOutput:
        """Render many rays for evaluation: chunks of `chunk_size` (default `config.chunk_size`) rays,
        without gradients, deterministic samples; per-sample tensors are dropped (`samples` is None).

        `progress(done, total)` is called after each chunk with the number of rays rendered.
        """
        chunk = chunk_size or self.config.chunk_size
        total = origins.shape[0]
        parts: list[VolumeRenderOutput] = []
        done = 0
        with torch.no_grad():
            for o, d in zip(origins.split(chunk), directions.split(chunk)):
                out = self.render(
                    o, d, sdf_fn, field_fn, inv_s, cos_anneal_ratio,
                    occupancy=occupancy, background_fn=background_fn,
                    background_color=background_color, training=False,
                )  # fmt: skip
                out.samples = None
                parts.append(out)
                done += o.shape[0]
                if progress is not None:
                    progress(done, total)
        if not parts:
            raise ValueError("render_chunked needs at least one ray")
        return VolumeRenderOutput(
            rgb=torch.cat([p.rgb for p in parts]).detach(),
            opacity=torch.cat([p.opacity for p in parts]).detach(),
            depth=torch.cat([p.depth for p in parts]).detach(),
            normals=torch.cat([p.normals for p in parts]).detach(),
            inv_s=parts[0].inv_s.detach(),
            background_rgb=None
            if parts[0].background_rgb is None
            else torch.cat([p.background_rgb for p in parts]).detach(),
        )
