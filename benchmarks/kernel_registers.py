"""Registers and spills of the fused filter-bank kernel per setting, compiled for a GPU on any machine.

    python benchmarks/kernel_registers.py [--arch 90] [--blocks 16 32 64 128] [--warps 4 8] [--banks ...]
        [--json out.json]

For each bank (`BANKS`: plain, style-modulated and its cheaper modulations, at the presets' widths),
points-per-program block, warp count and
product precision: Triton compiles `nsr.accel.nffb_triton._filter_bank_fwd` for the target (no GPU needed,
no kernel is run) and the ptxas that Triton ships assembles it with `-v`. Prints registers per thread,
spill bytes and the matrix-multiply instructions in the PTX (`mma` on 16-row tiles, `wgmma` where Hopper's
warp-group products are used). A kernel at 255 registers runs two programs of 4 warps per SM, and spills
go through local memory: this is where to look before spending device time on a setting
(`benchmarks/bench_fused_bank.py` times them on a GPU).
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import re
import subprocess
import tempfile
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from nsr.accel import nffb_triton

BANKS = {  # the kernel's switches (MOD, DIAG, RMS, ATT) of each bank
    "nffb": (False, False, False, False),
    "stylemod-nffb": (True, False, False, True),
    "stylemod-nffb:style_rms": (True, False, True, True),
    "stylemod-nffb:diagonal,style_rms": (True, True, True, True),
}


def ptxas() -> Path:
    """The newest ptxas among those Triton ships (a newer Triton writes PTX that its older one refuses)."""
    folder = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    found = sorted(folder.glob("ptxas*"), key=lambda p: p.name != "ptxas-blackwell")
    if not found:
        raise SystemExit(f"no ptxas under {folder}: this Triton has no NVIDIA backend")
    return found[0]


def compile_kernel(
    arch: int,
    block: int,
    warps: int,
    bank: str,
    precision: str,
    mod_precision: str,
    stages: int | None,
    max_registers: int = 0,
) -> dict:
    """Compile one setting of a bank of `BANKS` (the presets' widths: D 3, L 6, F 2, H 64, 64 outputs) and
    read its resources."""
    fn = nffb_triton._filter_bank_fwd
    names = list(inspect.signature(fn.fn).parameters)
    mod, diagonal, rms, attention = BANKS[bank]
    constants = {
        "D": 3, "L": 6, "LP": 8, "F": 2, "H": 64, "OUT": 64, "MOD": mod, "DIAG": diagonal, "RMS": rms,
        "ATT": attention, "INCLUDE": True, "BLOCK": block, "PRECISION": precision, "MOD_PRECISION": mod_precision,
    }  # fmt: skip
    signature = {
        name: "constexpr"
        if name in constants
        else "*fp32"
        if name.endswith("_ptr")
        else "i32"
        if name == "N"
        else "fp32"
        for name in names
    }
    source = ASTSource(
        fn=fn, signature=signature, constexprs={(names.index(k),): v for k, v in constants.items()}
    )
    options = {"num_warps": warps} | ({"num_stages": stages} if stages else {})
    options |= {"maxnreg": max_registers} if max_registers else {}
    ptx = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options).asm["ptx"]
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as file:
        file.write(ptx)
        file.flush()
        done = subprocess.run(
            [str(ptxas()), f"-arch=sm_{arch}a" if arch >= 90 else f"-arch=sm_{arch}", "-v", file.name,
             "-o", "/dev/null"], capture_output=True, text=True, check=True,
        )  # fmt: skip
    report = done.stdout + done.stderr
    registers = re.search(r"Used (\d+) registers", report)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report)
    return {
        "registers": int(registers.group(1)) if registers else None,
        "spill_stores": int(spills.group(1)) if spills else None,
        "spill_loads": int(spills.group(2)) if spills else None,
        "mma": len(re.findall(r"\bmma\.sync", ptx)),
        "wgmma": len(re.findall(r"\bwgmma\.mma_async", ptx)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability x 10 (90: H100 / H200)")
    parser.add_argument("--blocks", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--warps", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--banks", nargs="+", choices=list(BANKS), default=list(BANKS))
    parser.add_argument("--precisions", nargs="+", default=["tf32x3"])
    parser.add_argument("--mod-precisions", nargs="+", default=["same"], help="style bank's style/demod")
    parser.add_argument(
        "--stages", type=int, default=None, help="software-pipelining stages (Triton's default)"
    )
    parser.add_argument(
        "--max-registers", type=int, nargs="+", default=[0], help="caps of a thread's registers (0: none)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for bank, block, warps, precision, mod, regs in itertools.product(
        args.banks, args.blocks, args.warps, args.precisions, args.mod_precisions, args.max_registers
    ):
        if mod != "same" and not BANKS[bank][0]:
            continue
        row = {"bank": bank, "block": block, "warps": warps,
               "precision": precision, "mod": mod, "max_registers": regs}  # fmt: skip
        try:
            row |= compile_kernel(
                args.arch,
                block,
                warps,
                bank,
                precision,
                precision if mod == "same" else mod,
                args.stages,
                regs,
            )
        except Exception as failure:  # e.g. a block the target cannot hold
            row["failed"] = f"{type(failure).__name__}: {failure}"[:200]
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
