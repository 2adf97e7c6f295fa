"""Filling hidden pockets of the SDF during training.

IDR's losses constrain the SDF only where the cameras look: empty space along each ray up to the first
surface, the surface itself, and the eikonal term everywhere. A positive pocket behind the first surface
(a bubble, or a tunnel joined to the outer surface) costs nothing, so once made it stays. Runs with
trained cameras make them while the poses are still wrong: the mask loss of a misplaced ray carves into
the object, and when the pose is right again nothing closes the cut (benchmarks/history/2026-11.md, "Trainable
cameras": they are most of the Chamfer gap to the same runs with fixed cameras).

`PocketFill` finds such points now and then with the test of `nsr.mesh.visibility` (positive, seen as
empty by no training camera from its current pose, enclosed by the surface) and pushes the SDF there
below zero until the next refresh. The open space behind a one-sided capture is not enclosed and is
left alone.
"""

from __future__ import annotations

import torch

from nsr.config.train import PocketFillConfig
from nsr.engine.checkpoint import rng_tensor
from nsr.mesh.visibility import hidden_pockets, render_depth_views
from nsr.models import Model


class PocketFill:
    """The pocket points of the last refresh and the loss that fills them."""

    def __init__(self, config: PocketFillConfig, device: torch.device, seed: int) -> None:
        self.config = config
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        self.points = torch.empty(0, 3, device=device)
        """(P, 3) pocket points of the last refresh (normalised frame)."""
        self.values = torch.empty(0, device=device)
        """(P,) their SDF at the refresh: the loss asks for at most minus this (the pocket mirrored)."""
        self.refreshes = 0
        """Refreshes done so far (`PocketFillConfig.refresh_index` of the last one)."""

    def due(self, progress: float) -> bool:
        """Whether a refresh is due before a step at `progress` (in [0, 1]) of the run."""
        return self.config.refresh_index(progress) > self.refreshes

    @torch.no_grad()
    def refresh(
        self, model: Model, intrinsics, c2w, height: int, width: int, progress: float | None = None
    ) -> int:
        """Find the pocket points of the model's current SDF seen from cameras (N, 3, 3) K / (N, 4, 4)
        camera-to-world (normalised frame, images of height x width); returns how many were found.
        `progress`: where the run is (the refresh then counts as the one due there)."""
        cfg = self.config
        if progress is not None:
            self.refreshes = cfg.refresh_index(progress)
        was_training = model.training
        model.eval()
        try:
            sdf = model.sdf
            radius = model.bounding_radius
            views = render_depth_views(
                sdf,
                model.surface_tracer,
                intrinsics,
                c2w,
                height,
                width,
                max_side=cfg.max_side,
                device=self.device,
            )
            points = uniform_ball(cfg.samples, radius, self.generator).to(self.device)
            values = torch.cat([sdf(chunk) for chunk in points.split(1 << 16)])
            found = hidden_pockets(sdf, views, points, values, cfg.tolerance, radius)
        finally:
            model.train(was_training)
        self.points, self.values = points[found], values[found]
        return int(found.sum())

    def draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`batch` pocket points drawn at random from the last refresh's: (B, 3) points, (B,) their values and
        a () weight of 1; before any was found, zeros and a weight of 0 (drawing nothing), so that a
        captured step (`term` inside a CUDA graph) has the same shapes all run long."""
        batch = self.config.batch
        if not self.points.shape[0]:
            zeros = torch.zeros(batch, 3, device=self.device)
            return zeros, zeros[:, 0], torch.zeros((), device=self.device)
        index = torch.randint(self.points.shape[0], (batch,), generator=self.generator)
        index = index.to(self.device)
        return self.points[index], self.values[index], torch.ones((), device=self.device)

    @staticmethod
    def term(model: Model, points: torch.Tensor, values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """weight * mean(relu(sdf(p) + s_p)) of drawn points (`draw`)."""
        return torch.relu(model.sdf(points) + values).mean() * weight

    def loss(self, model: Model) -> torch.Tensor:
        """mean(relu(sdf(p) + s_p)) over `batch` pocket points drawn at random (0 without any)."""
        if not self.points.shape[0]:
            return torch.zeros((), device=self.device)
        return self.term(model, *self.draw())

    def state_dict(self) -> dict:
        return {
            "points": self.points.cpu(),
            "values": self.values.cpu(),
            "rng": self.generator.get_state(),
            "refreshes": self.refreshes,
        }

    def load_state_dict(self, state: dict) -> None:
        self.points = state["points"].to(self.device)
        self.values = state["values"].to(self.device)
        self.generator.set_state(rng_tensor(state["rng"]))
        self.refreshes = state.get("refreshes", 0)


def uniform_ball(count: int, radius: float, generator: torch.Generator) -> torch.Tensor:
    """(count, 3) points drawn uniformly in the ball of `radius` about the origin."""
    direction = torch.randn(count, 3, generator=generator)
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    distance = radius * torch.rand(count, 1, generator=generator) ** (1 / 3)
    return direction * distance
