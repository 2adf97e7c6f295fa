"""The whole training step (rays, loss, backward pass, optimiser steps) captured as one CUDA graph and replayed.

A step of a small grid-encoded model launches thousands of small kernels, and on a large GPU the host
cannot launch them as fast as the GPU runs them (the GPU idles most of the step: benchmarks/RESULTS.md,
"Step time and GPU use"). Replaying the step as a graph launches it at once. It needs a model whose loss
has fixed shapes and no host synchronisation (`Model.graphable`, `training_loss(batch, static=True)`),
optimisers that read their learning rates from tensors, and schedules that either live in tensors updated in
place (learning rates, IDR's mask alpha) or change what is computed only at a few points of the run
(`Model.schedule_key`: the number of unlocked grid levels; whether trained cameras move), where the step is
captured again.

The captured inputs are the batch's (view, pixel) indices, not its rays: the rays are made inside the step
from the cameras' poses of that step, so trained cameras (`TrainedCameras`) are part of the graph, their pose
corrections and their Adam updated by it. Changes made to them between steps in place (the camera guard's
re-localisation, `nsr.engine.camera_guard`) are seen by the next replay.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from nsr.cameras.refine import CameraRefinement
from nsr.models import LossOutput, Model, RayBatch

RayFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], RayBatch]
"""(N,) view positions, (N,) pixel indices, (V, 4, 4) camera-to-world transforms of the training views or
None (the scene's) -> the batch of rays with their ground truth (`RayBatcher.gather`)."""


@dataclass
class TrainedCameras:
    """The trained cameras of a captured step."""

    module: CameraRefinement
    """The pose corrections (`CameraRefinement`)."""
    optimizer: torch.optim.Optimizer
    """Their optimiser (its learning rate is read from a tensor once the step is captured)."""
    views: torch.Tensor
    """(V,) long scene indices of the training views, in the order of the batch's view positions."""


@dataclass
class ExtraTerm:
    """A loss term the model does not compute, added to a captured step's total (the pocket fill's,
    `nsr.engine.pockets`): evaluated inside the step on inputs drawn on the host before each call and copied
    into the captured ones, as the batch's indices are."""

    name: str
    """Its name among the step's terms (`term/<name>`)."""
    weight: float
    """Its weight in the total."""
    loss: Callable[..., torch.Tensor]
    """(*inputs) -> () the term; the inputs keep their shapes from call to call."""


class GraphedStep:
    """Replays one training step of `model` (and of its trained cameras) as a CUDA graph for every batch of
    the same size.

    The first `warmup` calls run the step eagerly on a side stream (the optimisers create their state,
    kernels compile and tune). After that every new capture key (batch size, `Model.schedule_key`, whether
    the cameras move) runs one eager step and is captured on the next call: an optimiser state created
    inside a capture would be created again, zeroed, by every replay (the camera Adam's moments appear only
    once the cameras start to move). Later calls with the key copy the indices into the captured inputs and
    replay. `invalidate()` (the optimisers' state was replaced, e.g. by a resumed checkpoint) starts over at
    one eager step. Every call is one real training step.
    """

    def __init__(
        self,
        model: Model,
        optimizer: torch.optim.Optimizer,
        rays: RayFn,
        cameras: TrainedCameras | None = None,
        grad_clip: float = 0.0,
        warmup: int = 2,
        extra: ExtraTerm | None = None,
    ):
        if not model.graphable:
            raise ValueError(f"{type(model).__name__} has no static loss to capture (graphable is False)")
        self.model = model
        self.optimizer = optimizer
        self.rays = rays
        self.cameras = cameras
        self.grad_clip = grad_clip
        self.warmup = warmup
        self.extra = extra
        self.captures = 0
        """How many times the step was captured (the tests read it)."""
        self._graph: torch.cuda.CUDAGraph | None = None
        self._key: tuple | None = None
        self._warm_key: tuple | None = None
        self._view: torch.Tensor | None = None
        self._pix: torch.Tensor | None = None
        self._inputs: tuple[torch.Tensor, ...] = ()
        self._outputs: torch.Tensor | None = None
        self._errors: torch.Tensor | None = None
        self.names: list[str] = []
        """What the values returned by a call are: `loss`, then `term/<name>` and `metric/<name>`."""

    def invalidate(self) -> None:
        """Forget the captured step (it holds the optimisers' state tensors of the time of capture); the next
        call runs eagerly and the one after captures again."""
        self._graph = self._key = self._warm_key = None
        self._view = self._pix = self._outputs = self._errors = None
        self._inputs = ()

    def __call__(
        self,
        view: torch.Tensor,
        pix: torch.Tensor,
        moving: bool = False,
        inputs: tuple[torch.Tensor, ...] = (),
    ) -> tuple[list[float], torch.Tensor | None]:
        """One training step on the rays of (N,) view positions and (N,) pixel indices (`RayBatcher.draw`).

        `moving`: the trained cameras move in this step (their learning rate is above zero); while they are
        frozen their rays carry no gradient and their Adam is not stepped, as in ordinary steps. False
        without trained cameras. `inputs`: the extra term's (`ExtraTerm.loss`), same shapes at every call.

        Returns:
            The values named by `names` (one host synchronisation), and the (N,) detached per-ray errors
            (`LossOutput.ray_error`, None when the model gives none), which the next call overwrites.
        """
        if (self.extra is None) != (not inputs):
            raise ValueError("GraphedStep: inputs are given exactly when there is an extra term")
        key = (view.shape[0], self.model.schedule_key(), moving, tuple(t.shape for t in inputs))
        if key == self._key:
            self._view.copy_(view)
            self._pix.copy_(pix)
            for captured, given in zip(self._inputs, inputs):
                captured.copy_(given)
        elif self.warmup > 0 or key != self._warm_key:
            return self._eager(view, pix, moving, inputs, key)
        else:
            self._capture(view, pix, moving, inputs, key)
        self._graph.replay()
        return self._outputs.tolist(), self._errors

    def _eager(
        self,
        view: torch.Tensor,
        pix: torch.Tensor,
        moving: bool,
        inputs: tuple[torch.Tensor, ...],
        key: tuple,
    ) -> tuple[list[float], torch.Tensor | None]:
        """The step run eagerly on a side stream; `key` is captured on the next call."""
        self.invalidate()  # a step captured for an older key is not replayed again: its memory is freed
        self.warmup = max(self.warmup - 1, 0)
        self._warm_key = key
        stream = torch.cuda.Stream(view.device)
        stream.wait_stream(torch.cuda.current_stream(view.device))
        with torch.cuda.stream(stream), warnings.catch_warnings():
            # After a capture the optimisers are capturable, and step() warns once when run uncaptured:
            # this eager step is meant to be.
            warnings.filterwarnings("ignore", message="This instance was constructed with capturable=True")
            self._zero_grad()
            values, errors = self._step(view, pix, moving, inputs)
        torch.cuda.current_stream(view.device).wait_stream(stream)
        return values.tolist(), errors

    def _capture(
        self,
        view: torch.Tensor,
        pix: torch.Tensor,
        moving: bool,
        inputs: tuple[torch.Tensor, ...],
        key: tuple,
    ) -> None:
        self._view, self._pix = view.clone(), pix.clone()
        self._inputs = tuple(t.clone() for t in inputs)
        for optimizer in self._optimizers():
            tensor_learning_rates(optimizer)
        self._zero_grad()  # the captured backward pass allocates the gradients
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self._outputs, self._errors = self._step(self._view, self._pix, moving, self._inputs)
        self._graph, self._key = graph, key
        self.captures += 1

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer] if self.cameras is None else [self.optimizer, self.cameras.optimizer]

    def _zero_grad(self) -> None:
        for optimizer in self._optimizers():
            optimizer.zero_grad(set_to_none=True)

    def _step(
        self, view: torch.Tensor, pix: torch.Tensor, moving: bool, inputs: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The step itself, as an ordinary step computes it (the gradients zeroed before): the training
        views' poses, the batch's rays from them, the static loss (and the extra term), its backward pass,
        the gradient clip (of the model's parameters), the optimisers' steps. Returns the values named by
        `names` in one tensor and the detached per-ray errors (or None)."""
        poses = None
        if self.cameras is not None:
            with torch.set_grad_enabled(moving):
                poses = self.cameras.module(self.cameras.views)
        losses = self.model.training_loss(self.rays(view, pix, poses), static=True)
        if self.extra is not None:
            term = self.extra.loss(*inputs)
            losses = LossOutput(
                total=losses.total + self.extra.weight * term,
                terms={**losses.terms, self.extra.name: term},
                metrics=losses.metrics,
                ray_error=losses.ray_error,
            )
        losses.total.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        if moving:
            self.cameras.optimizer.step()
        errors = None if losses.ray_error is None else losses.ray_error.detach()
        return self._pack(losses), errors

    def _pack(self, losses: LossOutput) -> torch.Tensor:
        """The step's scalars in one tensor (read back with one copy)."""
        self.names = ["loss", *(f"term/{k}" for k in losses.terms), *(f"metric/{k}" for k in losses.metrics)]
        values = [losses.total, *losses.terms.values(), *losses.metrics.values()]
        return torch.stack([v.detach().float().reshape(()) for v in values])


def tensor_learning_rates(optimizer: torch.optim.Optimizer) -> None:
    """Make the optimiser capturable with its learning rates in tensors (a captured step reads them from
    their storage; `set_learning_rate` then updates them in place)."""
    for group in optimizer.param_groups:
        device = group["params"][0].device
        if not isinstance(group["lr"], torch.Tensor):
            group["lr"] = torch.tensor(float(group["lr"]), device=device)
        group["capturable"] = True


def set_learning_rate(group: dict, value: float) -> None:
    """Set a parameter group's learning rate: in place when it is a tensor (`tensor_learning_rates`)."""
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(value)
    else:
        group["lr"] = value


def portable_optimizer_state(state: dict) -> dict:
    """An optimiser state dict as an ordinary optimiser saves it (float learning rates, not capturable), so
    that a checkpoint of a graphed run resumes anywhere, also on a CPU."""
    groups = []
    for group in state["param_groups"]:
        group = dict(group)
        if isinstance(group["lr"], torch.Tensor):
            group["lr"] = float(group["lr"])
        group["capturable"] = False
        groups.append(group)
    return {**state, "param_groups": groups}
