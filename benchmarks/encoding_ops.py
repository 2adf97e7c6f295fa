"""Operators one forward + backward of the filter banks dispatches (each is at least one GPU kernel launch
on CUDA, where a step of these banks is launch-bound), and its time on this machine.

    python benchmarks/encoding_ops.py [--points 2048] [--repeats 5] [--device cpu]

The grid features are computed once outside the count, so the numbers are those of the bank itself
(Fourier embeddings, trunk, modulation, attention, heads); views and other operators that launch nothing
are not counted. Also the bank's matrix-product FLOPs a point (PyTorch's FLOP counter), without gradient (what
a sphere-tracing evaluation costs) and forward + backward: the work a compute-bound kernel cannot avoid. Settings: the filter-bank presets' (8 levels of 16 to 1024, H = 64, w0 = 3, sigma 1).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from nsr.encodings import NFFBConfig, StyleModNFFBConfig

NO_LAUNCH = {
    "t", "transpose", "detach", "expand", "unsqueeze", "squeeze", "select", "slice", "permute", "alias",
    "_unsafe_view", "as_strided", "split", "unbind", "view", "_reshape_alias", "reshape",
}  # fmt: skip
"""Operator names (without overload) that only make views."""


class CountOps(TorchDispatchMode):
    """Counts the operators dispatched below autograd (forward and backward alike)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name not in NO_LAUNCH and not func.is_view:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def measure(config, points: int, repeats: int, device: str) -> dict:
    enc = config.build(3).to(device)
    x = (torch.rand(points, 3, device=device) * 1.6 - 0.8).requires_grad_(True)
    features = enc.grid.level_features(x).detach().requires_grad_(True)
    enc.grid.level_features = lambda _: features  # the bank alone
    enc(x).sum().backward()  # warm-up
    with CountOps() as forward:
        y = enc(x)
    with CountOps() as backward:
        y.sum().backward()
    with FlopCounterMode(display=False) as no_grad_flops, torch.no_grad():
        enc(x)
    with FlopCounterMode(display=False) as train_flops:
        enc(x).sum().backward()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        enc(x).sum().backward()
    sync()
    return {
        "bank": config.kind,
        "forward_ops": sum(forward.ops.values()),
        "backward_ops": sum(backward.ops.values()),
        "ms": round((time.perf_counter() - start) / repeats * 1000, 2),
        "flops_per_point_no_grad": round(no_grad_flops.get_total_flops() / points),
        "flops_per_point_train": round(train_flops.get_total_flops() / points),
        "top": forward.ops.most_common(5),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    common = dict(num_levels=8, base_resolution=16, finest_resolution=1024, hidden_dim=64, out_features=64,
                  base_sigma=1.0, w0=3.0, backend="torch")  # fmt: skip
    for cls in (NFFBConfig, StyleModNFFBConfig):
        print(measure(cls(**common), args.points, args.repeats, args.device))


if __name__ == "__main__":
    main()
