"""Parity of NSR's LPIPS network with the reference `lpips` package code, without any pretrained backbone.

Both networks get the same (random) AlexNet backbone weights and the lpips v0.1 linear layers (the
reference loads its own copy from its package, NSR its vendored copy), so scaling layer, feature taps,
channel normalisation, linear layers and spatial averaging are compared. torchvision is stubbed when absent.

    pip download lpips==0.1.4 --no-deps -d /tmp/lpips && unzip -q /tmp/lpips/*.whl -d /tmp/lpips/src
    python benchmarks/lpips_parity.py /tmp/lpips/src     # or with no argument when lpips is installed

Measured 2026-11-27 (CPU): relative differences ~1e-7 on three random 64x80 image pairs.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import torch

from nsr.metrics.lpips import LINEAR_WEIGHTS, LPIPS, alexnet_features, lpips_distance


def main() -> int:
    if len(sys.argv) > 1:
        sys.path.insert(0, sys.argv[1])
    generator = torch.Generator().manual_seed(0)
    features = alexnet_features()
    with torch.no_grad():
        for p in features.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.05)

    class _AlexNet:
        def __init__(self) -> None:
            self.features = features

    try:
        import torchvision

        torchvision.models.alexnet = lambda *a, **k: _AlexNet()
    except ImportError:
        tv, models = types.ModuleType("torchvision"), types.ModuleType("torchvision.models")
        models.alexnet = lambda *a, **k: _AlexNet()
        tv.models = models
        sys.modules["torchvision"], sys.modules["torchvision.models"] = tv, models
    import lpips

    reference = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    ours = LPIPS()
    backbone = {f"features.{k}": v for k, v in features.state_dict().items()}
    ours.load_weights(backbone, torch.load(LINEAR_WEIGHTS, map_location="cpu", weights_only=True))
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(3):
        a = rng.random((64, 80, 3))
        b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
        ta, tb = (torch.from_numpy(x).float().permute(2, 0, 1)[None] for x in (a, b))
        with torch.no_grad():
            r = float(reference(ta, tb, normalize=True))
        o = lpips_distance(ours, a, b)
        worst = max(worst, abs(r - o) / r)
        print(f"reference {r:.8f}  nsr {o:.8f}")
    print(f"max relative difference {worst:.2e}")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
