"""Divergence detection: is the run still training, or has it gone wrong?

Beyond a NaN loss, three signs (thresholds in `nsr.config.train.HealthConfig`):

- the loss far above its running level: a step whose loss exceeds `loss_factor` times the lowest
  running level the loss has had (an exponential average over the steps that were not suspect) is
  suspect, so a loss that climbs slowly is caught as well as one that jumps;
- the surface vanishing: the model's coverage (`Model.coverage_key`, e.g. IDR's hit ratio or NeuS's
  opacity, in [0, 1]) below `coverage_floor` times its running peak is suspect;
- parameters exploding: a non-finite parameter, or one of magnitude above `max_parameter`, ends the run
  at once (checked every `check_every` steps and before every checkpoint).

A suspicion starts at its first suspect step (the onset) and clears after `RECOVERY` steps in a row
that are not; if it lasts `patience` steps, the run has diverged, except that a vanished surface alone
must also have lasted `coverage_patience` of the run (a NeuS run can lose its surface early and grow it
back). The trainer writes no checkpoint
while a suspicion lasts, keeps a copy of the state once it has been followed by good steps, and on
divergence makes that copy the run's latest checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nsr.config.train import HealthConfig

RECOVERY = 10
"""Good steps in a row that end a suspicion."""
LEVEL_DECAY = 0.98
"""Weight of the past in the loss's running level (an average over about 50 steps)."""
COVERAGE_DECAY = 0.9
"""Weight of the past in the coverage's running average (per-batch coverage is noisy)."""
MIN_PEAK = 0.05
"""Coverage must once have reached this much before its collapse counts (a model that never covered
anything is not collapsing)."""


@dataclass
class Verdict:
    """The monitor's view after one step."""

    suspect: bool
    """A suspicion is running (no checkpoint should become `latest` now)."""
    diverged: str | None = None
    """What was seen, when the run has diverged (one phrase, with the step where it started)."""
    note: str | None = None
    """A line worth telling the user: the surface vanished, or came back."""


class HealthMonitor:
    """Watches losses, coverage and parameters step by step. Explicit state (`state_dict`), so that a
    resumed run keeps its running levels."""

    def __init__(self, config: HealthConfig, coverage_key: str | None) -> None:
        self.config = config
        self.coverage_key = coverage_key
        self.level: float | None = None
        """Running level of the loss (suspect steps left out)."""
        self.best: float | None = None
        """Lowest running level so far."""
        self.coverage: float | None = None
        """Running average of the coverage."""
        self.peak = 0.0
        """Highest running coverage so far."""
        self.onset: int | None = None
        """Step at which the current suspicion started (None: no suspicion)."""
        self.onset_progress: float | None = None
        """The run's progress at the onset (None: no suspicion, or not told)."""
        self.reason = ""
        """What the current suspicion is about."""
        self.good_streak = 0
        """Good steps in a row since the last suspect one."""
        self.last_suspect: int = -1
        """The last step that was suspect (-1: none yet)."""
        self.vanished_since: int | None = None
        """The first step of the coverage's current stay below its floor (None: above it)."""
        self.vanished_steps = 0
        """Steps the coverage has spent below its floor, over the run (a NeuS run's early collapse)."""

    # ------------------------------------------------------------------ per step
    def observe(
        self, step: int, loss: float, metrics: dict[str, float], progress: float | None = None
    ) -> Verdict:
        """Record step `step` (1-based: steps done) with its loss and indicators; `progress`: how far the run
        is, in [0, 1] (None: `coverage_patience` is not applied)."""
        cfg = self.config
        reasons = []
        vanished = False
        if not math.isfinite(loss):
            return self._diverge(step, f"the loss became {loss}")
        if (
            cfg.loss_factor > 0
            and self.best is not None
            and self.best > 0
            and loss > cfg.loss_factor * self.best
        ):
            reasons.append(
                f"the loss ({loss:.4g}) above {cfg.loss_factor:g}x its running level ({self.best:.4g})"
            )
        coverage = metrics.get(self.coverage_key) if self.coverage_key else None
        if coverage is not None and math.isfinite(coverage):
            self.coverage = (
                coverage
                if self.coverage is None
                else (COVERAGE_DECAY * self.coverage + (1 - COVERAGE_DECAY) * coverage)
            )
            self.peak = max(self.peak, self.coverage)
            floor = cfg.coverage_floor * self.peak
            if cfg.coverage_floor > 0 and self.peak >= MIN_PEAK and self.coverage < floor:
                vanished = True
                reasons.append(
                    f"the {self.coverage_key} ({self.coverage:.3g}) below {cfg.coverage_floor:g} of its peak "
                    f"({self.peak:.3g})"
                )
        note = self._vanishing(step, vanished)
        if reasons:
            if self.onset is None:
                self.onset, self.onset_progress = step, progress
            elif self.onset_progress is None:  # a suspicion resumed from a checkpoint that had no progress
                self.onset_progress = progress
            self.reason = " and ".join(reasons)
            self.good_streak = 0
            self.last_suspect = step
            lasted = step - self.onset + 1
            if lasted >= cfg.patience and not (len(reasons) == 1 and vanished and self._may_regrow(progress)):
                return self._diverge(step, f"{self.reason} for {lasted} steps")
            return Verdict(suspect=True, note=note)
        self.level = loss if self.level is None else LEVEL_DECAY * self.level + (1 - LEVEL_DECAY) * loss
        self.best = self.level if self.best is None else min(self.best, self.level)
        if self.onset is not None:
            self.good_streak += 1
            if self.good_streak < RECOVERY:
                return Verdict(suspect=True, note=note)
            self.onset, self.onset_progress = None, None
            self.reason = ""
        return Verdict(suspect=False, note=note)

    def _vanishing(self, step: int, vanished: bool) -> str | None:
        """Count the steps of a vanished surface; a line when it vanishes and when it comes back."""
        if vanished:
            self.vanished_steps += 1
            if self.vanished_since is None:
                self.vanished_since = step
                floor, patience = self.config.coverage_floor, self.config.coverage_patience
                wait = f"; the run stops if it stays there for {patience:g} of the run" if patience else ""
                return f"step {step}: the {self.coverage_key} fell below {floor:g} of its peak{wait}"
            return None
        if self.vanished_since is None:
            return None
        since, self.vanished_since = self.vanished_since, None
        return (
            f"step {step}: the {self.coverage_key} is back ({self.coverage:.3g}) after {step - since} steps"
        )

    def _may_regrow(self, progress: float | None) -> bool:
        """Whether a vanished surface has not yet lasted `coverage_patience` of the run."""
        if progress is None or self.onset_progress is None:
            return False
        return progress - self.onset_progress < self.config.coverage_patience

    def check_parameters(self, step: int, parameters) -> Verdict:
        """Non-finite or exploded parameters end the run at once."""
        largest = _largest_magnitude(parameters)
        if not math.isfinite(largest):
            return self._diverge(step, "parameters became non-finite")
        limit = self.config.max_parameter
        if limit > 0 and largest > limit:
            return self._diverge(step, f"a parameter reached magnitude {largest:.3g} (above {limit:g})")
        return Verdict(suspect=self.onset is not None)

    def _diverge(self, step: int, what: str) -> Verdict:
        if self.onset is None:
            self.onset = step
        self.last_suspect = step
        return Verdict(suspect=True, diverged=f"{what}, since step {self.onset}")

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "level": self.level,
            "best": self.best,
            "coverage": self.coverage,
            "peak": self.peak,
            "onset": self.onset,
            "onset_progress": self.onset_progress,
            "reason": self.reason,
            "good_streak": self.good_streak,
            "last_suspect": self.last_suspect,
            "vanished_since": self.vanished_since,
            "vanished_steps": self.vanished_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def parameters_finite(parameters) -> bool:
    """Whether every parameter value is finite."""
    return math.isfinite(_largest_magnitude(parameters))


def _largest_magnitude(parameters) -> float:
    """max |p| over all parameters (inf or nan when one is not finite); one device sync."""
    tensors = [p.detach() for p in parameters if p.numel()]
    if not tensors:
        return 0.0
    maxima = torch._foreach_norm(tensors, float("inf"))  # per tensor max |p|, no copies (as clip_grad_norm_)
    return torch.stack([m.float().to(maxima[0].device) for m in maxima]).max().item()


__all__ = ["HealthMonitor", "Verdict", "parameters_finite"]
