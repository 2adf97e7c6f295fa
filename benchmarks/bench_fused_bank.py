"""Time the filter banks' fused kernel for evaluations without gradient against the PyTorch bank.

    python benchmarks/bench_fused_bank.py [--points 2048 20480 204800] [--json out.json]

For each bank (the `nffb-fused` and `stylemod-nffb-fused` presets' encodings, grid tables randomised as
in a trained field) and number of points: the PyTorch bank's time without gradient, then the kernel's
(`NFFB.fused_forward`, i.e. `nsr.accel.nffb_triton.filter_bank_forward`) for each points-per-program block, product precision and
warp count, with its largest error relative to the bank's largest output. The grid lookup is outside the
timing (both read the same features). Needs CUDA; `--device cpu` runs it under the Triton interpreter
(set TRITON_INTERPRET=1) as a smoke test of the script only.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import time
from pathlib import Path

import torch

from nsr.config import get_preset


def timed(fn, repeats: int) -> float:
    """Milliseconds per call after two warm-up calls (compilation), synchronised."""
    for _ in range(2):
        fn()
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, nargs="+", default=[2048, 20480, 204800])
    parser.add_argument("--blocks", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--precisions", nargs="+", default=["ieee", "tf32x3"])
    parser.add_argument("--warps", type=int, nargs="+", default=[4, 8])
    parser.add_argument(
        "--mod-precisions",
        nargs="+",
        default=["same"],
        help="precisions of the style-modulated bank's style and demodulation products (same: --precisions)",
    )
    parser.add_argument(
        "--max-registers",
        type=int,
        nargs="+",
        default=[0],
        help="caps of a thread's registers (0: the compiler's)",
    )
    parser.add_argument("--banks", nargs="+", default=["nffb-fused", "stylemod-nffb-fused"], help="presets")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for preset in args.banks:
        config = get_preset(preset).model.sdf.encoding
        config.backend = "torch" if args.device == "cpu" else "fused"
        config.fused_bank = False  # the reference: the PyTorch bank
        torch.manual_seed(0)
        bank = config.build(3).to(args.device)
        with torch.no_grad():
            for p in bank.grid.parameters():
                p.uniform_(-0.3, 0.3)
        level_features = bank.grid.level_features
        for n in args.points:
            x = torch.rand(n, 3, device=args.device) * 1.8 - 0.9
            with torch.no_grad():
                features = level_features(x)
                bank.grid.level_features = lambda _, f=features: f  # both read the same features, untimed
                reference = bank(x)
                base = {"bank": config.kind, "points": n}
                rows.append(
                    {**base, "impl": "torch", "ms": round(timed(functools.partial(bank, x), args.repeats), 3)}
                )
                print(json.dumps(rows[-1]), flush=True)
                mods = args.mod_precisions if config.kind == "stylemod-nffb" else ["same"]
                settings = itertools.product(
                    args.blocks, args.precisions, args.warps, mods, args.max_registers
                )
                for block, precision, warps, mod, regs in settings:
                    knobs = {
                        "block": block,
                        "precision": precision,
                        "num_warps": warps,
                        "max_registers": regs,
                    }
                    if mod != "same":
                        knobs["mod_precision"] = mod
                    fused = functools.partial(bank.fused_forward, x, features, **knobs)
                    try:
                        begin = time.perf_counter()  # the first call builds the kernel for these knobs
                        error = ((fused() - reference).abs().max() / reference.abs().max()).item()
                        first_s = time.perf_counter() - begin
                        ms = timed(fused, args.repeats)
                    except Exception as failure:  # e.g. a block too large for the registers, tf32x3 on a CPU
                        rows.append({**base, "impl": "fused", "block": block, "precision": precision,
                                     "mod": mod, "warps": warps, "max_registers": regs, "failed": f"{type(failure).__name__}: {failure}"[:200]})  # fmt: skip
                    else:
                        rows.append({**base, "impl": "fused", "block": block, "precision": precision,
                                     "mod": mod, "warps": warps, "max_registers": regs, "ms": round(ms, 3), "max_rel_error": error,
                                     "first_call_s": round(first_s, 2)})  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
