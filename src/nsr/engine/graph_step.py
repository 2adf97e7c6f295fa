"""The whole training step (loss, backward pass, optimiser step) captured as one CUDA graph and replayed.

A step of a small grid-encoded model launches thousands of small kernels, and on a large GPU the host
cannot launch them as fast as the GPU runs them (the GPU idles most of the step: benchmarks/RESULTS.md,
"Step time and GPU use"). Replaying the step as a graph launches it at once. It needs a model whose loss
has fixed shapes and no host synchronisation (`Model.graphable`, `training_loss(batch, static=True)`), an
optimiser that reads its learning rates from tensors, and schedules that either live in tensors updated in
place (learning rates, IDR's mask alpha) or change what is computed only at a few points of the run
(`Model.schedule_key`: the number of unlocked grid levels), where the step is captured again.
"""

from __future__ import annotations

import torch

from nsr.models import LossOutput, Model, RayBatch


class GraphedStep:
    """Replays one training step of `model` as a CUDA graph for every batch of the same size.

    The first `warmup` calls run the step eagerly on a side stream (the optimiser creates its state,
    kernels compile and tune), the next one captures it, and later ones copy the batch into the captured
    inputs and replay. A new schedule key, a new batch size or `invalidate()` (the optimiser's state was
    replaced, e.g. by a resumed checkpoint) capture it again. Every call is one real training step.
    """

    def __init__(
        self, model: Model, optimizer: torch.optim.Optimizer, grad_clip: float = 0.0, warmup: int = 2
    ):
        if not model.graphable:
            raise ValueError(f"{type(model).__name__} has no static loss to capture (graphable is False)")
        self.model = model
        self.optimizer = optimizer
        self.grad_clip = grad_clip
        self.warmup = warmup
        self.captures = 0
        """How many times the step was captured (the tests read it)."""
        self._graph: torch.cuda.CUDAGraph | None = None
        self._key: tuple | None = None
        self._inputs: RayBatch | None = None
        self._outputs: torch.Tensor | None = None
        self.names: list[str] = []
        """What the values returned by a call are: `loss`, then `term/<name>` and `metric/<name>`."""

    def invalidate(self) -> None:
        """Forget the captured step (it holds the optimiser's state tensors of the time of capture)."""
        self._graph = self._key = self._inputs = self._outputs = None

    def __call__(self, batch: RayBatch) -> list[float]:
        """One training step on `batch`; returns the values named by `names` (one host synchronisation)."""
        if self.warmup > 0:
            self.warmup -= 1
            stream = torch.cuda.Stream(batch.origins.device)
            stream.wait_stream(torch.cuda.current_stream(batch.origins.device))
            with torch.cuda.stream(stream):
                self.optimizer.zero_grad(set_to_none=True)
                values = self._step(batch)
            torch.cuda.current_stream(batch.origins.device).wait_stream(stream)
            return values.tolist()
        key = (batch.origins.shape[0], self.model.schedule_key())
        if key != self._key:
            self._capture(batch, key)
        else:
            for buffer, value in zip(vars(self._inputs).values(), vars(batch).values()):
                buffer.copy_(value)
        self._graph.replay()
        return self._outputs.tolist()

    def _capture(self, batch: RayBatch, key: tuple) -> None:
        self.invalidate()  # frees the old graph's memory before the new one takes its own
        self._inputs = RayBatch(*(t.detach().clone() for t in vars(batch).values()))
        tensor_learning_rates(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)  # the captured backward pass allocates the gradients
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self._outputs = self._step(self._inputs)
        self._graph, self._key = graph, key
        self.captures += 1

    def _step(self, batch: RayBatch) -> torch.Tensor:
        losses = self.model.training_loss(batch, static=True)
        losses.total.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return self._pack(losses)

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
