"""Cameras left behind: per-view error monitoring and re-localisation while the cameras train.

Pose refinement follows the gradient of the photometric loss, which sees only a camera's near
neighbourhood: a camera that starts (or drifts) several degrees off, often one looking from below or
edge-on at a thin object, can settle where its rays contradict the surface all the other cameras agree on,
while the mean pose error still looks fine. Such a camera shows in its rays' error long before its pose
error can be measured:

- **Monitoring.** Every step the trainer passes the training rays' per-ray errors
  (`LossOutput.ray_error`, `nsr.losses.ray_photometric_error`) and their views; `CameraGuard` keeps an
  exponentially decayed sum and count per view (half-life `halflife` of the run), i.e. a running mean error
  per camera, at the cost of a few reductions per step (no extra rendering). At each check the views are
  compared robustly: z = (e - median) / (1.4826 MAD); a view is flagged when z > `threshold` and
  e > `min_ratio` x median (the ratio keeps a tight spread from flagging harmless differences). A camera the
  guard has moved before is flagged on the ratio alone: its pose was wrong once, and the search is worth
  repeating while it stays above the rest, the model being better each time.
- **Re-localisation.** A flagged camera's pose is searched with the current model and no gradients, in the
  camera's own parametrisation (`CameraRefinement`'s 6-vector correction), every candidate rendering the
  same `pixels` pixels of the view and scored by `pose_score` (1 - IoU of the silhouettes + the colour
  error where both see the object):
  1. the better of its current and its initial pose;
  2. a grid of turns about the camera's centre out to `search_range_deg` (a camera far off may not see its
     object where its image has it, and nothing local then points the way);
  3. compass searches (steps from `search_deg` halved down to `min_step_deg`) along each kind of move
     (`neighbours`: turns, shifts, orbits about the pivot), then along all of them.
  The best pose replaces the current one only when, on a second, independent draw of pixels, its score is
  at least `min_gain` lower (so a camera flagged for a harmless reason, e.g. a view that is simply harder
  to fit, is left where it is). The camera's first Adam moment is then cleared (its momentum pointed back
  towards the old pose); the second is kept, since clearing it while Adam's shared step count runs on would
  make the next steps several times `lr` large.

Everything is seeded by the guard's own generator and state (`state_dict`), so runs resume exactly, and a
run in which no camera is moved trains bit for bit as without the guard.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from nsr.cameras import pixel_rays
from nsr.cameras.refine import CameraRefinement, so3_exp
from nsr.config.train import CameraGuardConfig
from nsr.engine.checkpoint import rng_tensor
from nsr.metrics.poses import rotation_errors_deg
from nsr.models import Model

CAMERA_HEALTH = "cameras_health.json"
"""The guard's per-camera table in the run folder (`CameraGuard.health`; `nsr eval --cameras` and
`nsr report` show it)."""
MAD_TO_SIGMA = 1.4826
"""MAD x this estimates the standard deviation of normally distributed values."""


@dataclass
class ViewImages:
    """A training view's pixels, as the guard scores poses against them (tensors on the model's device)."""

    intrinsics: torch.Tensor
    """(3, 3) K."""
    uv: torch.Tensor
    """(P, 2) pixel coordinates (x, y) of all the view's pixels, row-major."""
    rgb: torch.Tensor
    """(P, 3) colours in [0, 1]."""
    mask: torch.Tensor | None
    """(P,) bool object mask; None when the run trains without masks."""


@dataclass
class Recovery:
    """One re-localisation of a camera (also one row of a view's history in RUN/cameras_health.json)."""

    view: int
    """Scene view index."""
    step: int
    progress: float
    score_before: float
    """`pose_score` of the pose it had, on the confirmation pixels."""
    score_after: float
    """... and of the pose found (the camera moved only if this is `min_gain` lower)."""
    accepted: bool
    """Whether the camera was moved."""
    rotation_deg: float
    """Rotation between the old and the new pose (0 when not accepted)."""
    centre_moved: float
    """Distance between the old and new centres, relative to the camera's distance to the scene centre."""
    candidates: int
    """Poses scored by the search."""


@dataclass
class CheckResult:
    """What one check found."""

    errors: np.ndarray
    """(V,) running mean error per training view (NaN: too few rays yet)."""
    z: np.ndarray
    """(V,) robust z-scores (NaN where not judged)."""
    flagged: list[int] = field(default_factory=list)
    """Training-view positions (0..V-1) flagged at this check."""
    median: float = math.nan
    mad: float = math.nan


class CameraGuard:
    """Per-view running errors of the training rays and re-localisation of the cameras far above the rest."""

    def __init__(self, config: CameraGuardConfig, views: list[int], device: torch.device, seed: int) -> None:
        """`views`: the scene indices of the training views, in the order of the trainer's ray sampler."""
        self.config = config
        self.views = list(views)
        self.device = device
        self.generator = torch.Generator().manual_seed(seed + 7919)
        n = len(self.views)
        self.sums = torch.zeros(n, dtype=torch.float64, device=device)
        """(V,) decayed sums of the rays' errors per view."""
        self.counts = torch.zeros(n, dtype=torch.float64, device=device)
        """(V,) decayed ray counts per view."""
        self.last_progress = 0.0
        self.checks = 0
        """Checks done so far (`CameraGuardConfig.check_index` of the last one)."""
        self.history: list[Recovery] = []
        self.last_check: CheckResult | None = None

    # ------------------------------------------------------------------ monitoring
    def observe(self, views: torch.Tensor, errors: torch.Tensor, progress: float) -> None:
        """Add one step's rays: (N,) training-view positions (0..V-1, the sampler's) and (N,) errors.

        The per-view sums are a masked reduction, not an atomic scatter, so they are the same on every run.
        """
        decay = 0.5 ** (max(progress - self.last_progress, 0.0) / self.config.halflife)
        self.last_progress = progress
        arange = torch.arange(len(self.views), device=views.device)
        onehot = (views[None, :] == arange[:, None]).to(torch.float64)
        errors = errors.detach().to(torch.float64)
        self.sums.mul_(decay).add_((onehot * errors[None, :]).sum(1))
        self.counts.mul_(decay).add_(onehot.sum(1))

    def errors(self) -> np.ndarray:
        """(V,) running mean error per training view (NaN where fewer than `min_rays`)."""
        sums, counts = self.sums.cpu().numpy(), self.counts.cpu().numpy()
        out = np.full(len(self.views), np.nan)
        enough = counts >= self.config.min_rays
        out[enough] = sums[enough] / counts[enough]
        return out

    def assess(self, trainable: np.ndarray | None = None, watched: np.ndarray | None = None) -> CheckResult:
        """Robust z-scores of the running errors and the flagged views (module docstring).

        Args:
            trainable: (V,) bool, the views that may be flagged (default: all).
            watched: (V,) bool, views already moved by the guard: flagged on `min_ratio` alone (their pose
                was wrong once; the search is repeated while they stay above the rest, the model getting
                better each time)."""
        cfg = self.config
        errors = self.errors()
        judged = ~np.isnan(errors)
        z = np.full(len(errors), np.nan)
        if judged.sum() < 3:
            return CheckResult(errors, z)
        median = float(np.median(errors[judged]))
        mad = float(np.median(np.abs(errors[judged] - median)))
        scale = max(MAD_TO_SIGMA * mad, 1e-6 * max(median, 1e-12), 1e-12)
        z[judged] = (errors[judged] - median) / scale
        far = z > cfg.threshold
        if watched is not None:
            far |= watched
        candidates = judged & far & (errors > cfg.min_ratio * median)
        if trainable is not None:
            candidates &= trainable
        flagged = [int(i) for i in np.flatnonzero(candidates)]
        return CheckResult(errors, z, flagged, median, mad)

    def due(self, progress: float) -> bool:
        """Whether a check is due before a step at `progress` (in [0, 1]) of the run."""
        return self.config.check_index(progress) > self.checks

    # ------------------------------------------------------------------ checks and recovery
    def check(
        self,
        model: Model,
        cameras: CameraRefinement,
        images: list[ViewImages],
        optimizer: torch.optim.Optimizer | None,
        step: int,
        progress: float,
    ) -> list[Recovery]:
        """Assess the views and re-localise the flagged ones (at most `max_recoveries` times each).

        Args:
            images: the training views' pixels, by training-view position.
            optimizer: the cameras' Adam (its first moment of a moved camera is cleared).
        Returns:
            One `Recovery` per re-localisation tried (accepted or not).
        """
        cfg = self.config
        self.checks = cfg.check_index(progress)
        trainable = cameras.trainable_mask.cpu().numpy()[self.views] > 0
        result = self.assess(trainable, self._moved())
        self.last_check = result
        done = []
        for position in result.flagged:
            view = self.views[position]
            if sum(1 for r in self.history if r.view == view and r.accepted) >= cfg.max_recoveries:
                continue
            recovery = self.relocalise(model, cameras, view, images[position], step, progress)
            if recovery.accepted:
                _clear_first_moment(optimizer, cameras.correction, view)
                # The running mean restarts: the view is judged again on rays from its new pose.
                self.sums[position] = 0.0
                self.counts[position] = 0.0
            self.history.append(recovery)
            done.append(recovery)
        return done

    @torch.no_grad()
    def relocalise(
        self,
        model: Model,
        cameras: CameraRefinement,
        view: int,
        pixels: ViewImages,
        step: int = 0,
        progress: float = 0.0,
    ) -> Recovery:
        """Search camera `view`'s correction for the pose that renders its pixels best (module docstring);
        moves the camera (in `cameras.correction`) when the pose found is confirmed on fresh pixels."""
        cfg = self.config
        count = pixels.uv.shape[0]
        search = torch.randint(count, (cfg.pixels,), generator=self.generator).to(pixels.uv.device)
        confirm = torch.randint(count, (cfg.pixels,), generator=self.generator).to(pixels.uv.device)
        current = cameras.correction[view].detach().clone()
        distance = float(cameras.initial_c2w[view, :3, 3].norm())
        depth = float(cameras.pivot_depth[view])
        was_training = model.training
        model.eval()
        try:

            def score(candidates: torch.Tensor) -> torch.Tensor:
                return self._score(model, cameras, view, pixels, search, candidates)

            starts = torch.stack([current, torch.zeros_like(current)])
            scores = score(starts)
            best = starts[int(scores.argmin())]
            # A camera far off may not see its object where its image has it (nothing to follow locally):
            # a grid of turns about its centre first finds where the object is.
            grid = turn_grid(
                best, math.radians(cfg.search_range_deg), math.radians(cfg.search_deg) / 2, depth
            )
            scores = torch.cat([scores.min()[None], score(grid)])
            best_score = float(scores.min())
            if int(scores.argmin()) > 0:
                best = grid[int(scores.argmin()) - 1]
            budget = cfg.max_candidates - len(starts) - len(grid)
            # One compass search per kind of move from the better start, then one over all moves from the
            # best of them.
            share = budget // (len(MOVE_FAMILIES) + 1)
            found = []
            for family in MOVE_FAMILIES:
                found.append(self._compass(score, best, best_score, distance, depth, family, share))
                budget -= found[-1][2]
            top, top_score, _ = min(found, key=lambda item: item[1])
            if top_score < best_score:
                best, best_score = top, top_score
            best, best_score, used = self._compass(score, best, best_score, distance, depth, None, budget)
            budget -= used
            before, after = self._score(model, cameras, view, pixels, confirm, torch.stack([current, best]))
        finally:
            model.train(was_training)
        before, after = float(before), float(after)
        accepted = after <= (1 - cfg.min_gain) * before
        rotation, moved = 0.0, 0.0
        if accepted:
            old, new = cameras.poses_with(view, torch.stack([current, best]).double()).cpu().numpy()
            rotation = float(rotation_errors_deg(old[None, :3, :3], new[None, :3, :3])[0])
            moved = float(np.linalg.norm(old[:3, 3] - new[:3, 3]) / max(distance, 1e-12))
            cameras.correction.data[view] = best
        scored = cfg.max_candidates - budget if budget >= 0 else len(starts) + len(grid)
        return Recovery(view, step, progress, before, after, accepted, rotation, moved, scored)

    def _compass(self, score, start, start_score, distance, depth, family, budget):
        """Compass search from a (6,) correction: move to the best of the `neighbours` while one beats the
        current pose, else halve the step, from `search_deg` down to `min_step_deg`, within `budget` scored
        poses. Returns (correction, its score, poses scored)."""
        cfg = self.config
        best, best_score, used = start, start_score, 0
        angle = math.radians(cfg.search_deg)
        while angle >= math.radians(cfg.min_step_deg):
            candidates = neighbours(best, angle, distance, depth, family)
            if used + len(candidates) > budget:
                break
            scores = score(candidates)
            used += len(candidates)
            if float(scores.min()) < best_score:
                best, best_score = candidates[int(scores.argmin())], float(scores.min())
            else:
                angle /= 2
        return best, best_score, used

    def _score(
        self,
        model: Model,
        cameras: CameraRefinement,
        view: int,
        pixels: ViewImages,
        index: torch.Tensor,
        corrections: torch.Tensor,
    ) -> torch.Tensor:
        """(K,) `pose_score` of the pixels `index` of a view rendered at (K, 6) candidate corrections."""
        poses = cameras.poses_with(view, corrections)
        k, p = len(corrections), len(index)
        pose = poses.repeat_interleave(p, dim=0)
        origins, directions = pixel_rays(pixels.intrinsics, pose, pixels.uv[index].repeat(k, 1))
        out = model.render(origins, directions)
        mask = None if pixels.mask is None else pixels.mask[index].repeat(k, 1)
        return pose_score(out.rgb.reshape(k, p, 3), out.opacity.reshape(k, p), pixels.rgb[index], mask)

    def _moved(self) -> np.ndarray:
        """(V,) bool: the training views whose camera the guard has moved (an accepted re-localisation)."""
        moved = {r.view for r in self.history if r.accepted}
        return np.array([view in moved for view in self.views])

    # ------------------------------------------------------------------ reporting and state
    def health(self, image_names: list[str] | None = None) -> dict:
        """The per-camera table of RUN/cameras_health.json: running errors, z-scores and flags of the last
        check, and every re-localisation tried."""
        check = self.last_check or self.assess(watched=self._moved())
        cfg = self.config
        rows = []
        for position, view in enumerate(self.views):
            error, z = check.errors[position], check.z[position]
            rows.append(
                {
                    "view": view,
                    "image": image_names[view] if image_names else None,
                    "error": None if math.isnan(error) else float(error),
                    "z": None if math.isnan(z) else float(z),
                    "flagged": position in check.flagged,
                    "recoveries": [asdict(r) for r in self.history if r.view == view],
                }
            )
        return {
            "checks": self.checks,
            "median": None if math.isnan(check.median) else check.median,
            "mad": None if math.isnan(check.mad) else check.mad,
            "threshold": cfg.threshold,
            "min_ratio": cfg.min_ratio,
            "recovered": sorted({r.view for r in self.history if r.accepted}),
            "cameras": rows,
        }

    def state_dict(self) -> dict:
        return {
            "sums": self.sums.cpu(),
            "counts": self.counts.cpu(),
            "last_progress": self.last_progress,
            "checks": self.checks,
            "history": [asdict(r) for r in self.history],
            "rng": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.sums = state["sums"].to(self.device)
        self.counts = state["counts"].to(self.device)
        self.last_progress = state["last_progress"]
        self.checks = state["checks"]
        self.history = [Recovery(**r) for r in state["history"]]
        self.generator.set_state(rng_tensor(state["rng"]))


MOVE_FAMILIES = ("turn", "shift", "orbit")
"""The kinds of moves of the pose search (`neighbours`)."""


def neighbours(
    correction: torch.Tensor, angle: float, distance: float, depth: float, family: str | None = None
) -> torch.Tensor:
    """Moves of the pose search from a (6,) correction (omega, tau) (`CameraRefinement`'s parametrisation,
    pivot at `depth` on the optical axis), each way along each direction of a family:

    - `orbit`: rotations by `angle` about the pivot (the camera's x, y and z axes): the camera orbits the
      object, whose image stays in place (z: a roll);
    - `shift`: translations by `angle * distance` along the camera's axes: the image shifts (x, y) or
      scales (z) about as much as by a rotation of `angle`;
    - `turn`: the same rotations with the camera's centre held: the image shifts (x, y) or turns (z) and
      the viewpoint stays.

    An error of one kind is undone only slowly by moves of another (an orbit and a shift that undo a turn
    between them each make the image worse alone, and a coarse surface hardly tells nearby viewpoints
    apart), hence one search per family before a search over all of them (`family=None`).

    Returns:
        (M, 6) corrections.
    """
    eye = torch.eye(3, dtype=correction.dtype, device=correction.device)
    omega, tau = correction[:3], correction[3:]
    moves = []
    for sign in (1.0, -1.0):
        if family in (None, "orbit"):
            moves += [torch.cat([omega + sign * angle * eye[k], tau]) for k in range(3)]
        if family in (None, "shift"):
            moves += [torch.cat([omega, tau + sign * angle * distance * eye[k]]) for k in range(3)]
        if family in (None, "turn"):
            moves += list(turned(correction, sign * angle * eye, depth))
    return torch.stack(moves)


def turned(correction: torch.Tensor, delta: torch.Tensor, depth: float) -> torch.Tensor:
    """(6,) correction -> (K, 6): its rotation changed by (K, 3) `delta` and its centre held (the offset
    d (e_z - E e_z) + tau of the rotation about the pivot at `depth` kept)."""
    omega, tau = correction[:3], correction[3:]
    rotated = omega[None] + delta
    axes = so3_exp(torch.cat([omega[None], rotated]))[:, :, 2]
    return torch.cat([rotated, tau[None] + depth * (axes[1:] - axes[:1])], dim=1)


def turn_grid(correction: torch.Tensor, extent: float, spacing: float, depth: float) -> torch.Tensor:
    """Turns of a (6,) correction about the camera's x and y axes on a square grid of `spacing` out to
    `extent` (radians) each way, the correction itself left out: (M, 6)."""
    count = int(extent / spacing + 1e-9)
    steps = torch.arange(-count, count + 1, dtype=correction.dtype, device=correction.device) * spacing
    x, y = torch.meshgrid(steps, steps, indexing="ij")
    delta = torch.stack([x.reshape(-1), y.reshape(-1), torch.zeros_like(x).reshape(-1)], dim=1)
    return turned(correction, delta[delta.abs().sum(1) > 0], depth)


def pose_score(
    rgb: torch.Tensor, opacity: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """How badly K candidate poses render P pixels of a view: `1 - IoU + colour`, lower is better.

    IoU: of the rendered silhouette (the opacity) and the object mask; colour: the mean absolute colour
    error over the pixels in both. A per-pixel error (`ray_photometric_error`'s silhouette term) would
    rate a camera that sees no object at all (an error of the mask's area) better than one that sees it
    less than half overlapped (up to twice that), and lead the search away from the object; the IoU falls
    steadily as the silhouettes part and is worst (1) when they do not meet. Without masks (the model
    renders the whole image): the mean colour error.

    Args:
        rgb: (K, P, 3) rendered colours; opacity: (K, P) in [0, 1]; target: (P, 3) the view's colours;
        mask: (K, P) or (P,) bool object masks, or None.

    Returns:
        (K,) scores (in [0, 2] with masks).
    """
    colour = (rgb - target).abs().mean(-1)
    if mask is None:
        return colour.mean(-1)
    m = mask.to(opacity.dtype).expand_as(opacity)
    both = opacity * m
    iou = both.sum(-1) / (opacity + m - both).sum(-1).clamp_min(1e-6)
    return 1 - iou + (both * colour).sum(-1) / both.sum(-1).clamp_min(1e-6)


def _clear_first_moment(optimizer: torch.optim.Optimizer | None, parameter: torch.Tensor, row: int) -> None:
    """Zero Adam's first moment of one row of a parameter (nothing before Adam's first step)."""
    if optimizer is None:
        return
    state = optimizer.state.get(parameter)
    if state and "exp_avg" in state:
        state["exp_avg"][row].zero_()
