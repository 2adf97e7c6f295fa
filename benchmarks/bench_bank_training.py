"""The filter banks' training path alone: forward + backward of a loss on the bank's output at N points, as a
NeuS step evaluates it (every sample with its finite-difference taps, all with gradient), in ms (median and
minimum of the repeats), and the operations one such evaluation dispatches (ATen operators other than views:
about the kernels a GPU launches, what bounds an eager step of a few thousand rays). CPU or CUDA (synchronised
around each repeat).

    python benchmarks/bench_bank_training.py --presets neus-nffb-fused neus-stylemod-nffb-fused --points 81920
    python benchmarks/bench_bank_training.py --modes eager compiled     # also with `compile_training`
    python benchmarks/bench_bank_training.py --modes written autograd   # the written-out backward or not

Modes: `eager` is the preset's eager bank (`written_backward: auto`: the style bank's chain written out, `BankChain`, on CUDA),
`written` and `autograd` the same with `written_backward` on and off (autograd's composition of `NFFB._chain`),
`compiled` with `compile_training` on.

Compare two commits by running it with PYTHONPATH pointing at each checkout's src/ in turn (RESULTS.md
section 6, 2026-12-06)."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nsr.config import get_preset

VIEWS = frozenset(
    [
        "alias",
        "as_strided",
        "detach",
        "expand",
        "lift_fresh",
        "permute",
        "select",
        "slice",
        "split",
        "split_with_sizes",
        "squeeze",
        "t",
        "transpose",
        "unbind",
        "unsqueeze",
        "view",
        "_unsafe_view",
        "_reshape_alias",
        "reshape",
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_empty_strided",
    ]
)
"""Operators that launch no kernel (views, allocations)."""


class OperationCount(TorchDispatchMode):
    """Counts the ATen operators dispatched inside it, views and allocations left out."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func.overloadpacket.__name__ not in VIEWS
        return func(*args, **(kwargs or {}))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_bank(preset: str, points: int, repeats: int, device: torch.device, mode: str = "eager") -> dict:
    torch.manual_seed(0)
    config = get_preset(preset).model.sdf.encoding
    config.compile_training = mode == "compiled"
    config.written_backward = {"written": "on", "autograd": "off"}.get(mode, "auto")
    bank = config.build(3).to(device)
    bank.set_progress(1.0)  # every level unlocked, as at the end of a run
    x = torch.rand(points, 3, device=device) * 1.6 - 0.8

    def once() -> float:
        sync(device)
        start = time.perf_counter()
        bank(x).square().mean().backward()
        sync(device)
        return (time.perf_counter() - start) * 1000

    start = time.perf_counter()
    for _ in range(2):
        once()  # the compiled chain compiles here
    warmup = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = [once() for _ in range(repeats)]
    with OperationCount() as operations:
        bank(x).square().mean().backward()
    failed = bank.compile_unavailable
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "preset": preset,
        "mode": f"eager (compiling failed: {failed})" if failed else mode,
        "points": points,
        "warmup_s": round(warmup, 1),
        "peak_gib": None if peak is None else round(peak, 2),
        "device": str(device),
        "ms_median": round(statistics.median(times), 2),
        "ms_min": round(min(times), 2),
        "operations": operations.count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["neus-nffb-fused", "neus-stylemod-nffb-fused"])
    parser.add_argument("--points", type=int, nargs="+", default=[81920])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument(
        "--modes", nargs="+", choices=["eager", "written", "autograd", "compiled"], default=["eager"]
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    for preset in args.presets:
        for points in args.points:
            for mode in args.modes:
                rows.append(time_bank(preset, points, args.repeats, torch.device(args.device), mode))
                print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
