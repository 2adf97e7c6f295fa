"""Peak memory and time of mesh extraction at high resolutions, each in a fresh process.

    python benchmarks/mesh_memory.py RUN --resolution 1024 2048 [--json OUT.json]   # `nsr mesh RUN`
    python benchmarks/mesh_memory.py --analytic --resolution 1024 2048              # no run needed

With RUN, each resolution runs `nsr mesh RUN --resolution N --out TMP.ply` as a user would (model loading,
block-wise extraction, world transform, PLY). With `--analytic`, the generated scene's exact SDF
(`nsr.scenes.default.default_object_sdf`, clipped to the unit sphere like a run's) is meshed the same way
without a network, which isolates the extraction's own memory. Peak memory is the child's maximum resident
set size (`os.wait4`); the estimate is the one `nsr mesh` prints before the fine levels.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ANALYTIC = """
import sys, trimesh
from nsr.mesh import extract_mesh, save_mesh
from nsr.scenes.default import default_object_sdf
resolution, out, block = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
mesh = extract_mesh(default_object_sdf, resolution=resolution, clip_radius=1.0, block_size=block,
                    on_estimate=lambda e: print(e.describe(), flush=True))
save_mesh(mesh, out)
print(f"wrote {out}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces")
"""


def measure(command: list[str]) -> dict:
    """Run a command; its wall time, peak RSS (bytes) and output."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{output}")
    faces = re.search(r"(\d+) faces", output)
    estimate = re.search(r"~([\d.]+) ([MG])B peak", output)
    return {
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 3),  # ru_maxrss is in KiB on Linux
        "faces": int(faces.group(1)) if faces else None,
        "estimate_gb": (float(estimate.group(1)) / (1000 if estimate.group(2) == "M" else 1))
        if estimate
        else None,
        "output": output.strip().splitlines()[-2:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", nargs="?", type=Path, help="run folder (omit with --analytic)")
    parser.add_argument("--analytic", action="store_true", help="mesh the generated scene's exact SDF")
    parser.add_argument("--resolution", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if (args.run is None) == (not args.analytic):
        parser.error("give a RUN folder or --analytic (not both)")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for resolution in args.resolution:
            out = Path(folder) / f"mesh_{resolution}.ply"
            if args.analytic:
                command = [sys.executable, "-c", ANALYTIC, str(resolution), str(out), str(args.block_size)]
            else:
                command = [sys.executable, "-m", "nsr.cli.main", "mesh", str(args.run), "--resolution",
                           str(resolution), "--out", str(out), "--block-size", str(args.block_size),
                           "--device", args.device]  # fmt: skip
            result = {"resolution": resolution, "source": "analytic" if args.analytic else str(args.run)}
            result.update(measure(command))
            out.unlink(missing_ok=True)
            results.append(result)
            print(
                f"{resolution}^3: {result['seconds']:.0f} s, peak RSS {result['peak_rss_gb']:.2f} GB "
                f"(estimated {result['estimate_gb']} GB + the process), {result['faces']} faces",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
