"""Hash grid kernel benchmark: parity, then speed of the fused Triton kernel against the torch reference.

    python benchmarks/bench_hashgrid.py --out benchmarks/results/hashgrid_h100.json

1. Parity of `fused` against `torch` (forward, gradient to the input, gradient to the table) on random
   points, for the benchmark configuration and several dense/hashed/F configurations; max abs errors
   are printed, and the run fails (exit 1) when one is above tolerance.
2. Timings (median of CUDA-event-timed repeats, after warm-up and Triton compilation) of
   forward, forward+backward to the table, forward+backward to the table and the input, for
   N = 2^18 and 2^20 points, L = 16, F = 2, T = 2^19, N_min 16, N_max 2048 (change with flags); tcnn too
   when tinycudann is installed (its level geometry differs: no parity check).
3. The same for a whole SDF field step (a 2x64 MLP on the grid, eikonal + value loss, backward):
   torch + analytic double backward, torch + finite differences, fused + finite differences.

Bytes touched per point (the memory-traffic model against which "effective GB/s" is computed):
    forward            L * 2^D * F * 4  (corner reads)  + D * 4 (input) + L * F * 4 (output)
    backward (table)   L * F * 4 (grad_out) + D * 4 (input) + L * 2^D * F * 4 * 2 (atomic read-modify-write)
    backward (+input)  + L * 2^D * F * 4 (corner reads for d/dx) + D * 4 (grad_x)
The floor is bytes / the device's measured copy bandwidth (a device-to-device copy of 1 GiB). Coarse
levels are cached in L2, so effective GB/s above the copy bandwidth is possible.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nsr.accel.probe import has_cuda, has_tcnn, has_triton
from nsr.encodings import HashGridConfig
from nsr.encodings.hashgrid import hashgrid_torch
from nsr.fields import SDFFieldConfig

PARITY_CONFIGS = [
    # (D, F, L, log2 T, N_min, N_max, smoothstep)
    (3, 2, 16, 19, 16, 2048, False),
    (3, 1, 8, 14, 8, 512, False),
    (3, 4, 6, 16, 16, 256, True),
    (3, 8, 4, 18, 16, 128, False),
    (2, 2, 8, 12, 16, 1024, False),
]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int, warmup: int = 3) -> float:
    """Median milliseconds of fn()."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def copy_bandwidth_gbps(device: str) -> float:
    """Measured device copy bandwidth (read + write) in GB/s."""
    n = (1 << 30) // 4 if device.startswith("cuda") else (1 << 26) // 4
    a = torch.empty(n, device=device)
    b = torch.empty_like(a)
    ms = timed(lambda: b.copy_(a), device, repeats=10)
    return 2 * a.numel() * 4 / (ms * 1e-3) / 1e9


def grid_bytes(n: int, d: int, levels: int, f: int) -> dict[str, int]:
    corners = levels * 2**d * f * 4
    fwd = n * (corners + d * 4 + levels * f * 4)
    bwd_table = n * (levels * f * 4 + d * 4 + 2 * corners)
    bwd_input = n * (corners + d * 4)
    return {"fwd": fwd, "fwd+bwd_table": fwd + bwd_table, "fwd+bwd_table+input": fwd + bwd_table + bwd_input}


def parity(device: str, n: int) -> list[dict]:
    from nsr.accel.hashgrid_triton import hashgrid_fused

    rows = []
    for d, f, levels, log2t, lo, hi, smooth in PARITY_CONFIGS:
        g = (
            HashGridConfig(
                num_levels=levels, features_per_level=f, log2_table_size=log2t, base_resolution=lo,
                finest_resolution=hi, init_scale=1.0, backend="torch",
            )
            .build(d)
            .to(device)
        )  # fmt: skip
        x = (torch.rand(n, d, device=device) * 2.2 - 1.1).requires_grad_(True)
        args = (g._res, g._offsets, g._dense, g.table_size - 1, 1.0, smooth)
        ref = hashgrid_torch(x, g.table, *args)
        out = hashgrid_fused(x, g.table, *args)
        go = torch.randn_like(ref)
        gx_ref, gt_ref = torch.autograd.grad(ref, [x, g.table], go)
        gx, gt = torch.autograd.grad(out, [x, g.table], go)
        rows.append(
            {
                "config": f"D={d} F={f} L={levels} T=2^{log2t} N={lo}..{hi} {'smoothstep' if smooth else 'linear'}",
                "dense_levels": sum(g.dense_levels),
                "finest_resolution": hi,
                "fwd_max_abs": (out - ref).abs().max().item(),
                "dx_max_abs": (gx - gx_ref).abs().max().item(),
                "dx_max_rel": ((gx - gx_ref).abs().max() / gx_ref.abs().max().clamp_min(1e-30)).item(),
                "dtable_max_abs": (gt - gt_ref).abs().max().item(),
                "dtable_max": gt_ref.abs().max().item(),
            }
        )
    return rows


def bench_grid(backend: str, n: int, args, device: str) -> dict:
    cfg = HashGridConfig(
        num_levels=args.levels, features_per_level=args.features, log2_table_size=args.log2_table,
        base_resolution=args.base_resolution, finest_resolution=args.finest_resolution, backend=backend,
        include_input=False,
    )  # fmt: skip
    g = cfg.build(3).to(device)
    x = torch.rand(n, 3, device=device) * 2 - 1
    xg = x.clone().requires_grad_(True)
    go = torch.randn(n, args.levels, args.features, device=device)
    out = {}

    def fwd():
        with torch.no_grad():
            g.level_features(x)

    def fwd_bwd_table():
        g.zero_grad(set_to_none=True)
        g.level_features(x).backward(go)

    def fwd_bwd_all():
        g.zero_grad(set_to_none=True)
        xg.grad = None
        g.level_features(xg).backward(go)

    for name, fn in [("fwd", fwd), ("fwd+bwd_table", fwd_bwd_table), ("fwd+bwd_table+input", fwd_bwd_all)]:
        try:
            out[name] = timed(fn, device, args.repeats)
        except torch.cuda.OutOfMemoryError:
            out[name] = None
            torch.cuda.empty_cache()
    return out


def bench_field(backend: str, gradient: str, n: int, args, device: str) -> float | None:
    enc = HashGridConfig(
        num_levels=args.levels, features_per_level=args.features, log2_table_size=args.log2_table,
        base_resolution=args.base_resolution, finest_resolution=args.finest_resolution, backend=backend,
    )  # fmt: skip
    field = SDFFieldConfig(
        encoding=enc, hidden_dim=64, num_layers=2, skip_layers=(), feature_dim=15, gradient=gradient
    ).build()
    field = field.to(device)
    x = torch.rand(n, 3, device=device) * 2 - 1

    def step():
        field.zero_grad(set_to_none=True)
        out = field.with_gradient(x, create_graph=True)
        loss = ((out.gradient.norm(dim=-1) - 1) ** 2).mean() + out.sdf.abs().mean()
        loss.backward()

    try:
        return timed(step, device, args.repeats)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None


def _fmt(value: float | None, spec: str) -> str:
    return "OOM" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--points", type=int, nargs="+", default=[1 << 18, 1 << 20])
    parser.add_argument("--levels", type=int, default=16)
    parser.add_argument("--features", type=int, default=2)
    parser.add_argument("--log2-table", type=int, default=19)
    parser.add_argument("--base-resolution", type=int, default=16)
    parser.add_argument("--finest-resolution", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--field-points", type=int, default=1 << 16, help="points of the SDF field step")
    parser.add_argument("--device", default="cuda" if has_cuda() else "cpu")
    parser.add_argument("--parity-points", type=int, default=100_000)
    args = parser.parse_args()
    device = args.device
    torch.manual_seed(0)
    fused_ok = has_triton() and device.startswith("cuda")
    # Parity also runs on CPU tensors under Triton's interpreter (TRITON_INTERPRET=1), as a smoke test.
    parity_ok = fused_ok or (has_triton() and os.environ.get("TRITON_INTERPRET") == "1")
    info = {
        "device": torch.cuda.get_device_name(0)
        if device.startswith("cuda")
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "triton": __import__("triton").__version__ if has_triton() else None,
        "tcnn": has_tcnn(),
    }
    print(f"# Hash grid benchmark on {info['device']} (torch {info['torch']}, triton {info['triton']})\n")
    result: dict = {
        "info": info,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }

    failed = False
    if parity_ok:
        rows = parity(device, args.parity_points)
        result["parity"] = rows
        print("## Parity of fused against torch (max abs errors)\n")
        print("| config | dense levels | forward | d/dx (abs, rel) | d/dtable (abs; max |grad|) |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['config']} | {r['dense_levels']} | {r['fwd_max_abs']:.2e} | {r['dx_max_abs']:.2e}, "
                f"{r['dx_max_rel']:.2e} | {r['dtable_max_abs']:.2e}; {r['dtable_max']:.2e} |"
            )
            # Table entries are U(-1, 1) here, so a cell's slope reaches ~2 per cell: float32 rounding of
            # the position u * N_max (about N_max * 2^-24 cells) moves the forward value by up to
            # ~4 N_max 2^-24 between two correct implementations; allow 4x that.
            fwd_tol = 16 * r["finest_resolution"] * 2.0**-24
            bad = r["fwd_max_abs"] > fwd_tol or r["dx_max_rel"] > 1e-4 or r["dtable_max_abs"] > 1e-3
            failed |= bad
        print("\nparity:", "FAILED" if failed else "ok", "\n")
    else:
        print("(fused kernel not available here: needs CUDA and Triton; timing torch only)\n")

    bandwidth = copy_bandwidth_gbps(device)
    result["copy_bandwidth_gbps"] = bandwidth
    backends = (
        ["torch"]
        + (["fused"] if fused_ok else [])
        + (["tcnn"] if has_tcnn() and device.startswith("cuda") else [])
    )
    print(
        f"## Grid lookup: L={args.levels}, F={args.features}, T=2^{args.log2_table}, "
        f"N_min={args.base_resolution}, N_max={args.finest_resolution}; measured copy bandwidth "
        f"{bandwidth:.0f} GB/s\n"
    )
    print("| points | backend | pass | ms | effective GB/s | floor ms | x floor | speed-up vs torch |")
    print("|---|---|---|---|---|---|---|---|")
    timings = []
    for n in args.points:
        nbytes = grid_bytes(n, 3, args.levels, args.features)
        per_backend = {b: bench_grid(b, n, args, device) for b in backends}
        for b, times in per_backend.items():
            for name, ms in times.items():
                floor_ms = nbytes[name] / (bandwidth * 1e9) * 1e3
                ref = per_backend["torch"].get(name)
                row = {
                    "points": n, "backend": b, "pass": name, "ms": ms, "bytes": nbytes[name],
                    "effective_gbps": None if ms is None else nbytes[name] / (ms * 1e-3) / 1e9,
                    "floor_ms": floor_ms, "speedup_vs_torch": None if (ms is None or ref is None) else ref / ms,
                }  # fmt: skip
                timings.append(row)
                print(
                    f"| 2^{math.log2(n):g} | {b} | {name} | {_fmt(ms, '.3f')} | "
                    f"{_fmt(row['effective_gbps'], '.0f')} | {floor_ms:.3f} | "
                    f"{_fmt(None if ms is None else ms / floor_ms, '.1f')} | {_fmt(row['speedup_vs_torch'], '.1f')} |"
                )
    result["grid"] = timings

    print(
        f"\n## SDF field step (2x64 MLP on the grid, eikonal + |sdf|, backward), {args.field_points} points\n"
    )
    print("| encoding backend | gradient | ms | speed-up vs torch analytic |")
    print("|---|---|---|---|")
    cases = [("torch", "analytic"), ("torch", "finite_difference")]
    if fused_ok:
        cases.append(("fused", "finite_difference"))
    field_rows = []
    base = None
    for b, gradient in cases:
        ms = bench_field(b, gradient, args.field_points, args, device)
        base = ms if base is None else base
        speedup = None if (ms is None or base is None) else base / ms
        field_rows.append({"backend": b, "gradient": gradient, "ms": ms, "speedup": speedup})
        print(
            f"| {b} | {gradient} | {'OOM' if ms is None else f'{ms:.2f}'} | "
            f"{'-' if speedup is None else f'{speedup:.1f}'} |"
        )
    result["field_step"] = field_rows

    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
