"""Memory of one evaluation chunk: a preset's (untrained) model renders N rays at once, as validation views and
`nsr eval` do, and the peak memory's growth is printed (RSS on a CPU, the CUDA allocator's peak on a GPU).

    python benchmarks/eval_memory.py --presets neus-nffb-fused neus-hashgrid-fused neus-positional --rays 256
"""

from __future__ import annotations

import argparse
import json
import resource

import torch

from nsr.config import get_preset


def chunk_memory(preset: str, rays: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = get_preset(preset).model.build().to(device)
    origins = torch.nn.functional.normalize(torch.randn(rays, 3, device=device), dim=-1) * 2.5
    directions = -torch.nn.functional.normalize(origins, dim=-1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    model.render(origins, directions, chunk_size=rays)
    if device.type == "cuda":
        after = torch.cuda.max_memory_allocated(device)
    else:
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "preset": preset,
        "rays": rays,
        "device": str(device),
        "peak_growth_gb": round((after - before) / 1e9, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--presets", nargs="+", default=["neus-nffb-fused", "neus-hashgrid-fused", "neus-positional"]
    )
    parser.add_argument("--rays", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    for preset in args.presets:  # on a CPU the peak RSS only grows: run the presets from small to large
        print(json.dumps(chunk_memory(preset, args.rays, torch.device(args.device))), flush=True)


if __name__ == "__main__":
    main()
