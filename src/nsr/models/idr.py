"""The IDR model: SDF field + appearance field + sphere tracer + losses, composed in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch.nn.utils import parametrize

from nsr import checks
from nsr.fields import AppearanceFieldConfig, SDFFieldConfig
from nsr.losses import eikonal_loss, mask_loss, ray_photometric_error, rgb_loss
from nsr.models.base import LossOutput, Model, ModelError, RayBatch, RenderOutputs
from nsr.renderers import GraphedTrace, SphereTracer, SphereTracerConfig, differentiable_surface_points


@dataclass
class IDRLossConfig:
    """Loss weights and the mask-loss sharpness schedule."""

    eikonal_weight: float = 0.1
    """Weight of the eikonal term."""
    mask_weight: float = 100.0
    """Weight of the mask term."""
    alpha_init: float = 50.0
    """Initial sharpness alpha of the mask loss."""
    alpha_factor: float = 2.0
    """alpha is multiplied by this at every milestone."""
    alpha_milestones: tuple[float, ...] = (0.125, 0.25, 0.375, 0.5, 0.625)
    """Fractions of the run at which alpha grows (IDR: every 250 of its 2000 epochs)."""
    eikonal_points_ratio: float = 0.5
    """Uniform eikonal points per ray (IDR: half the number of rays)."""
    tv_weight: float = 0.0
    """Weight of the SDF encoding's total-variation regulariser (grid encodings; 0 = off)."""

    def validate(self) -> None:
        checks.non_negative("eikonal_weight", self.eikonal_weight)
        checks.non_negative("mask_weight", self.mask_weight)
        checks.positive("alpha_init", self.alpha_init)
        checks.positive("alpha_factor", self.alpha_factor)
        checks.fractions("alpha_milestones", self.alpha_milestones)
        checks.non_negative("eikonal_points_ratio", self.eikonal_points_ratio)
        checks.non_negative("tv_weight", self.tv_weight, "0 = off")


@dataclass
class IDRModelConfig:
    """Everything that defines an IDR model."""

    kind: Literal["idr"] = "idr"
    """Renderer family: IDR (sphere tracing to one surface point per ray)."""
    sdf: SDFFieldConfig = field(default_factory=SDFFieldConfig)
    appearance: AppearanceFieldConfig = field(default_factory=AppearanceFieldConfig)
    tracer: SphereTracerConfig = field(default_factory=SphereTracerConfig)
    loss: IDRLossConfig = field(default_factory=IDRLossConfig)
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Colour of rays that miss the surface (the scene's background; not supervised by IDR)."""

    def validate(self) -> None:
        for value in self.background:
            checks.in_range("background", value, 0.0, 1.0, "an RGB colour")

    def build(self) -> IDRModel:
        return IDRModel(self)

    def without_masks(self) -> IDRModelConfig:
        """IDR cannot train without object masks (its mask loss shapes the silhouette): refused."""
        raise ModelError(
            "the IDR renderer needs object masks; train without masks with a NeuS preset "
            "(e.g. --preset neus-hashgrid-fused)"
        )


def mask_alpha(config: IDRLossConfig, progress: float) -> float:
    """The mask-loss sharpness at a point of the run (alpha grows by `alpha_factor` at every milestone
    passed)."""
    passed = sum(1 for m in config.alpha_milestones if progress >= m)
    return config.alpha_init * config.alpha_factor**passed


class IDRModel(Model):
    """IDR: trace the SDF's zero set, render colour at differentiable surface points."""

    progress_keys = ("hit_ratio", "alpha")
    coverage_key = "hit_ratio"

    @property
    def graphable(self) -> bool:
        """The static loss has fixed shapes with the static tracer (`mode: static`, or `auto` on CUDA); the
        compact one indexes the rays still tracing, which a CUDA graph cannot capture."""
        return self.config.tracer.mode != "compact"

    def __init__(self, config: IDRModelConfig) -> None:
        super().__init__()
        self.config = config
        self.sdf_field = config.sdf.build()
        self.appearance = config.appearance.build(config.sdf.feature_dim)
        self.tracer = SphereTracer(config.tracer)
        self.register_buffer(
            "background", torch.tensor(config.background, dtype=torch.float32), persistent=False
        )
        self.step = 0
        self.progress = 0.0
        self._graphs: dict[tuple, GraphedTrace] = {}
        # The mask-loss sharpness as a tensor updated in place, so that a captured step reads its schedule.
        self.register_buffer("_alpha", torch.tensor(mask_alpha(config.loss, 0.0)), persistent=False)

    def set_progress(self, progress: float) -> None:
        super().set_progress(progress)
        self._alpha.fill_(mask_alpha(self.config.loss, progress))

    @property
    def bounding_radius(self) -> float:
        return self.config.tracer.bounding_radius

    @property
    def surface_tracer(self) -> SphereTracer:
        return self.tracer

    def schedule_fractions(self) -> dict:
        return {
            **super().schedule_fractions(),
            "mask_alpha_milestones": list(self.config.loss.alpha_milestones),
        }

    def _sdf(self, x: torch.Tensor) -> torch.Tensor:
        return self.sdf_field.sdf(x)

    def _trace(self, origins, directions, object_mask=None, graphed=True):
        """`graphed`: replay the training-time trace as its own CUDA graph where the config asks for it (not
        inside a step that is itself captured whole)."""
        was_training = self.sdf_field.training
        self.sdf_field.eval()
        try:
            if graphed and self.config.tracer.cuda_graph and object_mask is not None and origins.is_cuda:
                return self._graphed_trace(origins, directions, object_mask)
            # Weight-normalised weights are computed once per trace, not once per SDF query.
            with parametrize.cached():
                return self.tracer.trace(self._sdf, origins, directions, object_mask)
        finally:
            self.sdf_field.train(was_training)

    def _graphed_trace(self, origins, directions, object_mask):
        key = (origins.shape[0], origins.device, self.sdf_field.encoding.schedule_key())
        if key not in self._graphs:
            self._graphs.clear()  # a schedule moved on: free the graphs captured with the old state
            self._graphs[key] = GraphedTrace(
                self.tracer, self._sdf, origins, directions, object_mask, context=parametrize.cached
            )
        return self._graphs[key](origins, directions, object_mask)

    def training_loss(self, batch: RayBatch, static: bool = False) -> LossOutput:
        """Colour at the differentiable surface points of the rays that hit inside the mask, eikonal on
        those, the mask points and uniform points, and the mask loss at the minimal-SDF points of the other
        rays (origins/directions may carry camera gradients).

        `static`: the same loss with fixed shapes and no host synchronisation (`_static_loss`), so that the
        trainer can capture the whole step as a CUDA graph; the default selects the rays by index (fewer
        points evaluated when few rays hit)."""
        if static:
            return self._static_loss(batch)
        cfg = self.config.loss
        origins, directions, rgb_gt, object_mask = batch.origins, batch.directions, batch.rgb, batch.mask
        n = origins.shape[0]
        trace = self._trace(origins.detach(), directions.detach(), object_mask)
        surface = trace.hit & object_mask
        s_idx = surface.nonzero().squeeze(1)
        o_idx = (~surface).nonzero().squeeze(1)

        x_surf = differentiable_surface_points(
            self._sdf, origins[s_idx], directions[s_idx], trace.depth[s_idx]
        )
        n_uniform = int(cfg.eikonal_points_ratio * n)
        r = self.config.tracer.bounding_radius
        uniform = torch.empty(n_uniform, 3, device=origins.device).uniform_(-r, r)
        mask_points = trace.min_points[o_idx]
        if origins.requires_grad or directions.requires_grad:
            # Trainable cameras: recompute the minimal-SDF points on the differentiable rays (same values),
            # so the mask loss also moves the cameras.
            t_min = ((mask_points - origins[o_idx].detach()) * directions[o_idx].detach()).sum(-1)
            mask_points = origins[o_idx] + directions[o_idx] * t_min[:, None]
        points = torch.cat([x_surf, mask_points, uniform])
        out = self.sdf_field.with_gradient(points, create_graph=True)
        ns, no = s_idx.numel(), o_idx.numel()

        rgb = self.appearance(x_surf, out.gradient[:ns], directions[s_idx], out.features[:ns])
        l_rgb = rgb_loss(rgb, rgb_gt[s_idx], n)
        l_eik = eikonal_loss(out.gradient)
        alpha = mask_alpha(cfg, self.progress)
        l_mask = mask_loss(out.sdf[ns : ns + no], object_mask[o_idx], alpha, n)
        total = self._total(l_rgb, l_eik, l_mask)
        with torch.no_grad():
            mse = ((rgb - rgb_gt[s_idx]) ** 2).mean() if ns else torch.tensor(1.0, device=origins.device)
            psnr = -10 * torch.log10(mse.clamp_min(1e-10))
            hit_ratio = surface.sum() / object_mask.sum().clamp_min(1)
            # Colour is known on the surface rays only, the only rays whose colour error counts (mask * hit).
            rendered = torch.zeros_like(rgb_gt).index_copy(0, s_idx, rgb.detach())
            ray_error = ray_photometric_error(rendered, rgb_gt, trace.hit.to(rgb_gt.dtype), object_mask)
        return LossOutput(
            total=total,
            terms={"rgb": l_rgb, "eikonal": l_eik, "mask": l_mask},
            metrics={"psnr": psnr, "hit_ratio": hit_ratio, "alpha": torch.tensor(alpha)},
            ray_error=ray_error,
        )

    def _total(self, l_rgb: torch.Tensor, l_eik: torch.Tensor, l_mask: torch.Tensor) -> torch.Tensor:
        """The weighted sum of the terms, with the SDF encoding's TV regulariser when it is weighted."""
        cfg = self.config.loss
        total = l_rgb + cfg.eikonal_weight * l_eik + cfg.mask_weight * l_mask
        if cfg.tv_weight > 0:
            tv = self.sdf_field.encoding.total_variation()
            if tv is not None:
                total = total + cfg.tv_weight * tv
        return total

    def _static_loss(self, batch: RayBatch) -> LossOutput:
        """`training_loss` without indexing: every ray keeps one point, its differentiable surface point
        if it hits inside the mask (colour and eikonal there), else its minimal-SDF point (mask loss and
        eikonal there), and the terms are sums weighted by those two selections. The points, the terms and
        their gradients equal the indexed loss's (`tests/models/test_idr_static.py`); only the appearance
        field also runs (unused) on the rays that do not hit."""
        cfg = self.config.loss
        origins, directions, rgb_gt, object_mask = batch.origins, batch.directions, batch.rgb, batch.mask
        n = origins.shape[0]
        trace = self._trace(origins.detach(), directions.detach(), object_mask, graphed=False)
        surface = trace.hit & object_mask
        # Depth of each ray's minimal-SDF point (on the rays as traced: the same values on trained rays).
        t_min = ((trace.min_points - origins.detach()) * directions.detach()).sum(-1)
        if origins.requires_grad or directions.requires_grad:
            mask_points = origins + directions * t_min[:, None]
        else:
            mask_points = trace.min_points
        # Surface points for every ray (the other rays' are computed at their mask point, then not used).
        x_surf = differentiable_surface_points(
            self._sdf, origins, directions, torch.where(surface, trace.depth, t_min)
        )
        ray_points = torch.where(surface[:, None], x_surf, mask_points)
        n_uniform = int(cfg.eikonal_points_ratio * n)
        r = self.config.tracer.bounding_radius
        uniform = torch.empty(n_uniform, 3, device=origins.device).uniform_(-r, r)
        out = self.sdf_field.with_gradient(torch.cat([ray_points, uniform]), create_graph=True)

        rgb = self.appearance(ray_points, out.gradient[:n], directions, out.features[:n])
        l_rgb = rgb_loss(rgb, rgb_gt, n, select=surface)
        l_eik = eikonal_loss(out.gradient)
        alpha = self._alpha
        l_mask = mask_loss(out.sdf[:n], object_mask, alpha, n, select=~surface)
        total = self._total(l_rgb, l_eik, l_mask)
        with torch.no_grad():
            ns = surface.to(rgb.dtype).sum()
            squared = torch.where(surface, (rgb - rgb_gt).square().sum(-1), 0.0).sum()
            mse = torch.where(ns > 0, squared / (3 * ns).clamp_min(1), 1.0)
            psnr = -10 * torch.log10(mse.clamp_min(1e-10))
            hit_ratio = ns / object_mask.sum().clamp_min(1)
            rendered = torch.where(surface[:, None], rgb.detach(), 0.0)
            ray_error = ray_photometric_error(rendered, rgb_gt, trace.hit.to(rgb_gt.dtype), object_mask)
        return LossOutput(
            total=total,
            terms={"rgb": l_rgb, "eikonal": l_eik, "mask": l_mask},
            metrics={"psnr": psnr, "hit_ratio": hit_ratio, "alpha": alpha.clone()},
            ray_error=ray_error,
        )

    def render(
        self, origins: torch.Tensor, directions: torch.Tensor, chunk_size: int | None = None
    ) -> RenderOutputs:
        chunk_size = chunk_size or self.eval_chunk_size
        outs = [
            self._render_chunk(o, d) for o, d in zip(origins.split(chunk_size), directions.split(chunk_size))
        ]
        return RenderOutputs.cat(outs)

    def _render_chunk(self, origins, directions) -> RenderOutputs:
        trace = self._trace(origins, directions)
        n = origins.shape[0]
        rgb = self.background.expand(n, 3).clone()
        normals = torch.zeros(n, 3, device=origins.device)
        idx = trace.hit.nonzero().squeeze(1)
        if idx.numel():
            x = origins[idx] + directions[idx] * trace.depth[idx, None]
            out = self.sdf_field.with_gradient(x, create_graph=False)
            with torch.no_grad():
                rgb[idx] = self.appearance(x, out.gradient, directions[idx], out.features)
                normals[idx] = torch.nn.functional.normalize(out.gradient, dim=-1)
        return RenderOutputs(
            rgb=rgb.detach(), opacity=trace.hit.float(), depth=trace.depth, normals=normals.detach()
        )
