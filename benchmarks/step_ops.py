"""Operators one training step dispatches, counted on a CPU as the GPU would launch them as kernels.

    python benchmarks/step_ops.py --scene .data/synthetic_spot_mitsuba \
        --presets hashgrid-fused nffb-fused stylemod-nffb-fused [--fused-bank] [--rays 256] [--set KEY=VALUE ...]

(e.g. `--set model.sdf.encoding.written_backward=on` for the filter banks' training chain as CUDA runs it, or
`--set model.tracer.fused_steps=on` for the sphere-tracing and secant steps as `nsr.accel.trace_triton`'s kernels,
run under the Triton interpreter and counted as one operator each)

A step replayed as one CUDA graph is bound by its number of kernels (benchmarks/RESULTS.md, "Step time and
GPU use"), and a CPU can count them before a GPU measures them. The step is IDR's static training loss and
its backward pass, as the captured step runs it (sphere tracing in static mode). The fused hash-grid lookup
counts as one operator forward and three backward (the Triton kernels and the zeroed gradient buffers), as
on CUDA; with `--fused-bank` the filter banks' evaluations without gradient run the fused kernel of
`nsr.accel.nffb_triton` under the Triton interpreter and count as one operator. View operators are not
counted (benchmarks/encoding_ops.py). The optimiser's step (a few fused kernels) is not counted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

if "--fused-bank" in sys.argv or "model.tracer.fused_steps=on" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"  # before Triton is imported

import torch

sys.path.insert(0, str(Path(__file__).parent))
from encoding_ops import CountOps

from nsr.cli.train import with_overrides
from nsr.config import get_preset
from nsr.data.idr import load_idr_scene
from nsr.encodings.hashgrid import HashGrid
from nsr.encodings.nffb import NFFB
from nsr.engine.trainer import Trainer
from nsr.models import RayBatch
from nsr.renderers.sphere_tracing import SphereTracer


class Counter:
    """The active `CountOps`, and `extra`: the fused kernels counted by hand while the count is paused."""

    def __init__(self) -> None:
        self.mode: CountOps | None = None
        self.extra = 0

    def add(self, n: int) -> None:
        if self.mode is not None:
            self.extra += n


COUNTER = Counter()
TORCH_LEVEL_FEATURES = HashGrid.level_features


class _OneKernelGrid(torch.autograd.Function):
    """The torch lookup run uncounted, counted as the fused kernel's 1 forward and 3 backward operators."""

    @staticmethod
    def forward(ctx, x, table, grid):
        ctx.save_for_backward(x, table)
        ctx.grid = grid
        with _paused():
            out = TORCH_LEVEL_FEATURES(grid, x)
        COUNTER.add(1)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, _table = ctx.saved_tensors
        with _paused(), torch.enable_grad():
            x = x.detach().requires_grad_(ctx.needs_input_grad[0])
            out = TORCH_LEVEL_FEATURES(ctx.grid, x)
            inputs = [t for t in (x, ctx.grid.table) if t.requires_grad]
            grads = iter(torch.autograd.grad(out, inputs, grad, allow_unused=True))
        COUNTER.add(3)
        return (next(grads) if x.requires_grad else None), next(grads), None


class _CountedKernel:
    """A Triton kernel whose launches count as one operator each (the interpreter's copies left uncounted)."""

    def __init__(self, kernel) -> None:
        self.kernel = kernel

    def __getitem__(self, grid):
        launch = self.kernel[grid]

        def counted(*args, **kwargs):
            with _paused():
                launch(*args, **kwargs)
            COUNTER.add(1)

        return counted


class _paused:
    """Operators dispatched inside are not counted (the torch stand-in of a fused kernel)."""

    def __enter__(self):
        self.mode = COUNTER.mode
        if self.mode is not None:
            self.saved, self.mode.ops = self.mode.ops, type(self.mode.ops)()
        return self

    def __exit__(self, *exc):
        if self.mode is not None:
            self.mode.ops = self.saved


def fused_grid(self: HashGrid, x: torch.Tensor) -> torch.Tensor:
    return _OneKernelGrid.apply(x, self.table, self)


def count_step(preset: str, scene, rays: int, fused_bank: bool, overrides: list[str] = ()) -> dict:
    config = with_overrides(get_preset(preset), ["model.tracer.mode=static", *overrides])
    config.tensorboard, config.val_every, config.rays_per_batch = False, 0, rays
    trainer = Trainer(config, scene, Path(tempfile.mkdtemp()))
    for _ in range(2):
        trainer.train_step()
    _, origins, dirs, rgb, mask = trainer.batcher.sample(rays, None)
    batch = RayBatch(origins, dirs, rgb, mask)
    trainer.optimizer.zero_grad(set_to_none=True)
    counts = {}
    for phase in ("forward", "backward"):
        COUNTER.extra = 0
        with CountOps() as mode:
            COUNTER.mode = mode
            if phase == "forward":
                losses = trainer.model.training_loss(batch, static=True)
            else:
                losses.total.backward()
        COUNTER.mode = None
        counts[phase] = sum(mode.ops.values()) + COUNTER.extra
    return {
        "preset": preset,
        "fused_bank": fused_bank,
        "set": list(overrides),
        **counts,
        "total": counts["forward"] + counts["backward"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument(
        "--presets", nargs="+", default=["hashgrid-fused", "nffb-fused", "stylemod-nffb-fused"]
    )
    parser.add_argument("--rays", type=int, default=256)
    parser.add_argument("--fused-bank", action="store_true", help="filter banks without gradient: the kernel")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument(
        "--two-calls-a-step",
        action="store_true",
        help="the static trace as before 2026-12-05 day 2: each sphere-tracing step calls the SDF again at its "
        "new depths instead of reading them from the back-off's batch",
    )
    args = parser.parse_args()
    SphereTracer.values_from_back_off = not args.two_calls_a_step
    if "model.tracer.fused_steps=on" in args.set:
        from nsr.accel import trace_triton

        for name in ("_advance_kernel", "_choose_kernel", "_secant_kernel"):
            setattr(trace_triton, name, _CountedKernel(getattr(trace_triton, name)))
    HashGrid.level_features = fused_grid
    if args.fused_bank:
        forward = NFFB.fused_forward

        def counted(self, x, grid_features):
            with _paused():
                out = forward(self, x, grid_features)
            COUNTER.add(1 + (4 if getattr(self, "styles", None) is not None else 2))  # kernel + stacks
            return out

        NFFB.fused_inference = lambda self, x: not torch.is_grad_enabled()
        NFFB.fused_forward = counted
    scene = load_idr_scene(args.scene)
    for preset in args.presets:
        print(count_step(preset, scene, args.rays, args.fused_bank, args.set), flush=True)


if __name__ == "__main__":
    main()
