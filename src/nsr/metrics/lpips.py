"""LPIPS (Zhang et al. 2018), AlexNet variant v0.1, in plain PyTorch with the reference weight layouts.

Conventions (those of the `lpips` package, `lpips.LPIPS(net="alex", version="0.1")`):

- inputs are (N, 3, H, W) RGB in [-1, 1] (`lpips_distance` takes [0, 1] images and maps them with
  2x - 1, the `normalize=True` path of the reference; the original system fed [0, 1] directly, which is
  the bug this module exists to avoid);
- a fixed scaling layer (shift (-0.030, -0.088, -0.188), scale (0.458, 0.448, 0.450)), then the five ReLU
  outputs of torchvision's AlexNet `features`; each is unit-normalised along channels (eps 1e-10), the
  squared differences are weighted by the 1x1 linear layers, averaged over space and summed over layers.

Weights: the backbone comes from torchvision's ImageNet AlexNet checkpoint in the torch hub cache
(`<torch.hub.get_dir()>/checkpoints/alexnet-owt-7be5be79.pth`, i.e. `$TORCH_HOME/hub/checkpoints` or
`~/.cache/torch/hub/checkpoints`); the linear layers ship with NSR (`lpips_weights/alex_v0.1.pth`, BSD-2,
from the `lpips` package). Nothing is downloaded. When the backbone is missing, `load_lpips` returns
None with one line saying how to get it; no number is ever computed with random weights.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
"""torchvision's ImageNet AlexNet checkpoint name (IMAGENET1K_V1)."""
ALEXNET_URL = f"https://download.pytorch.org/models/{ALEXNET_FILE}"
LINEAR_WEIGHTS = Path(__file__).with_name("lpips_weights") / "alex_v0.1.pth"
CHANNELS = (64, 192, 384, 256, 256)
"""Channels of the five AlexNet ReLU outputs that LPIPS compares."""
_TAPS = (1, 4, 7, 9, 11)
"""Indices in torchvision's `alexnet.features` after which the five features are taken."""
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPSWeightsError(ValueError):
    """A state dict that does not have the layout of torchvision AlexNet / lpips linear layers."""


def alexnet_features() -> nn.Sequential:
    """torchvision's `alexnet().features` layer for layer (same indices, so its state-dict keys load)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(),
    )


class LPIPS(nn.Module):
    """The LPIPS v0.1 AlexNet network. Build it with `load_lpips` (weights), never use it untrained."""

    def __init__(self) -> None:
        super().__init__()
        self.features = alexnet_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def load_weights(self, backbone: dict[str, torch.Tensor], linear: dict[str, torch.Tensor]) -> None:
        """Load a torchvision AlexNet state dict (`features.*` keys; the classifier is ignored) and an
        lpips linear-layer state dict (`lin{i}.model.1.weight`). Raises LPIPSWeightsError on a bad layout."""
        feats = {k[len("features.") :]: v for k, v in backbone.items() if k.startswith("features.")}
        lins = {}
        for i in range(len(CHANNELS)):
            key = f"lin{i}.model.1.weight"
            if key not in linear:
                raise LPIPSWeightsError(f"LPIPS linear weights lack {key!r}")
            lins[f"{i}.weight"] = linear[key]
        for module, state, name in ((self.features, feats, "AlexNet backbone"), (self.lins, lins, "linear")):
            expected = module.state_dict()
            missing = sorted(set(expected) - set(state))
            wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
            if missing or wrong:
                raise LPIPSWeightsError(
                    f"LPIPS {name} weights have the wrong layout (missing {missing[:3]}, wrong shapes {wrong[:3]})"
                )
            module.load_state_dict({k: state[k] for k in expected})

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS distance of (N, 3, H, W) images in [-1, 1] -> (N,) (0 = identical)."""
        hx, hy = (x - self.shift) / self.scale, (y - self.shift) / self.scale
        total = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        tap = 0
        for i, layer in enumerate(self.features):
            hx, hy = layer(hx), layer(hy)
            if i == _TAPS[tap]:
                diff = (_unit(hx) - _unit(hy)) ** 2
                total = total + self.lins[tap](diff).mean(dim=(1, 2, 3))
                tap += 1
        return total


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + eps)


@dataclass
class LPIPSStatus:
    """Whether LPIPS can be computed here, and if not, the one line that says how to fix it."""

    available: bool
    message: str
    backbone_path: Path


def alexnet_cache_path() -> Path:
    """Where torchvision would have cached the AlexNet weights (no download, no import of torchvision)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def lpips_status(backbone_path: str | Path | None = None) -> LPIPSStatus:
    """Probe for the weights; never raises."""
    path = Path(backbone_path) if backbone_path is not None else alexnet_cache_path()
    if not LINEAR_WEIGHTS.is_file():
        return LPIPSStatus(False, f"LPIPS unavailable: {LINEAR_WEIGHTS} is missing (reinstall nsr)", path)
    if not path.is_file():
        return LPIPSStatus(
            False,
            f"LPIPS unavailable: AlexNet weights not found at {path}; download {ALEXNET_URL} into "
            f"{path.parent} (or set TORCH_HOME) on a machine with internet access",
            path,
        )
    return LPIPSStatus(True, f"LPIPS: AlexNet v0.1, backbone {path}", path)


def load_lpips(
    backbone_path: str | Path | None = None, device: torch.device | str = "cpu"
) -> tuple[LPIPS | None, LPIPSStatus]:
    """The pretrained LPIPS network, or (None, status) when the weights are absent or unreadable."""
    status = lpips_status(backbone_path)
    if not status.available:
        return None, status
    try:
        backbone = torch.load(status.backbone_path, map_location="cpu", weights_only=True)
        linear = torch.load(LINEAR_WEIGHTS, map_location="cpu", weights_only=True)
        model = LPIPS()
        model.load_weights(backbone, linear)
    except (OSError, RuntimeError, LPIPSWeightsError, EOFError, pickle.UnpicklingError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        status = LPIPSStatus(
            False, f"LPIPS unavailable: cannot load {status.backbone_path}: {reason}", status.backbone_path
        )
        return None, status
    return model.to(device), status


def lpips_distance(model: LPIPS, pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """LPIPS of two (H, W, 3) images in [0, 1] (mapped to [-1, 1] before the network)."""
    device = model.shift.device

    def prep(v) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v).float().to(device)
        if t.ndim != 3 or t.shape[-1] != 3:
            raise ValueError(f"LPIPS needs (H, W, 3) images, got {tuple(t.shape)}")
        if t.min() < -1e-4 or t.max() > 1 + 1e-4:
            raise ValueError("LPIPS inputs must be [0, 1] colours")
        return (t.permute(2, 0, 1)[None] * 2 - 1).clamp(-1, 1)

    with torch.no_grad():
        return float(model(prep(pred), prep(target))[0])
