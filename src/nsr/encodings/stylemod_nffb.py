"""Style-modulated filter bank: per-level styles modulate the trunk, attention weights the levels.

Builds the intended behaviour of the original `StyleModNFFB`, whose "attention" was a softmax over
a size-1 axis (identically 1) and whose "demodulation" was a misapplied instance norm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from nsr import checks
from nsr.encodings.nffb import NFFB, NFFBConfig


@dataclass
class StyleModNFFBConfig(NFFBConfig):
    """The filter bank of `nffb` plus StyleGAN2 weight (de)modulation and attention over levels."""

    kind: Literal["stylemod-nffb"] = "stylemod-nffb"  # type: ignore[assignment]
    modulation: bool = True
    """Modulate and demodulate each injected trunk layer's weights with its level's style."""
    attention: bool = True
    """Weight the levels' contributions by a position-dependent softmax over the L levels."""
    style_map: Literal["linear", "diagonal"] = "linear"
    """How a level's embedding e (N, H) gives its style s: `linear` s = A e + a (StyleGAN2's learned affine, an
    (H, H) product a point and level), `diagonal` s = g * e + a (a learned gain and offset per channel: no
    product)."""
    demodulation: Literal["exact", "style_rms"] = "exact"
    """`exact`: each output unit's modulated row w_j * s demodulated to the norm of w_j (StyleGAN2; an (H, H)
    product a point and level); `style_rms`: the style divided by its root mean square at the point instead,
    s / rms(s), which is the exact demodulation where the entries of each row w_j have one magnitude (as
    SIREN's initialisation draws them) and costs no product."""
    demodulation_eps: float = 1e-8
    """Epsilon of the demodulation, 1 / sqrt(sum w'^2 + eps) (or 1 / sqrt(mean s^2 + eps))."""

    def validate(self) -> None:
        super().validate()
        checks.positive("demodulation_eps", self.demodulation_eps)
        checks.one_of("style_map", self.style_map, ("linear", "diagonal"))
        checks.one_of("demodulation", self.demodulation, ("exact", "style_rms"))

    def build(self, in_dim: int) -> StyleModNFFB:
        return StyleModNFFB(in_dim, self)


class StyleModNFFB(NFFB):
    """x (N, D) -> (N, D * include_input + out_features); the `NFFB` recursion with two changes.

    Modulation: level i's Fourier embedding e_i (N, H) gives a style s_i = A_i e_i + 1 (learned affine,
    bias initialised to 1 as in StyleGAN2) that modulates the input weights of trunk layer i + 1,
    w'_jk = w_jk s_k, and demodulates them per output unit, w''_jk = w'_jk / sqrt(sum_k w'_jk^2 + eps).
    Per point this is computed without materialising the weights: y = (W (s * h)) * d with
    d_j = 1 / sqrt((W^2 s^2)_j + eps). The demodulated row is then rescaled by the norm of the
    unmodulated row ||w_j||, so that a neutral style (s constant) gives back the plain SIREN layer and
    SIREN's initialisation keeps its frequency calibration (a unit-norm row times w0 would not).
    Cheaper, without the two (H, H) products a level: `style_map: diagonal` gives s_i = g_i * e_i + a_i,
    and `demodulation: style_rms` uses y = W (s * h) / rms(s) (the exact d_j ||w_j|| where each row's
    entries have one magnitude).

    Attention: a_l(x) = softmax_l(U [x / bound, g_0, .., g_{L-1}] + u), a softmax over the L levels
    whose logits depend on the position and on the local grid features; the output is
    sum_l a_l (V_l h_l + c_l) instead of the mean over levels.
    """

    def __init__(self, in_dim: int, config: StyleModNFFBConfig) -> None:
        super().__init__(in_dim, config)
        hidden, levels = config.hidden_dim, config.num_levels
        self.styles: nn.ModuleList | None = None
        self.style_gain: nn.Parameter | None = None
        self.style_offset: nn.Parameter | None = None
        if config.modulation and config.style_map == "linear":
            self.styles = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(levels))
            for style in self.styles:
                nn.init.constant_(style.bias, 1.0)
        elif config.modulation:
            # gains U(-1, 1): the styles' spread about 1 that the linear map's default initialisation gives
            # (std about 0.4 for embeddings of sines)
            self.style_gain = nn.Parameter(torch.empty(levels, hidden).uniform_(-1.0, 1.0))
            self.style_offset = nn.Parameter(torch.ones(levels, hidden))
        self.attention: nn.Linear | None = None
        if config.attention:
            self.attention = nn.Linear(in_dim + levels * config.features_per_level, levels)

    def style(self, index: int, embedding: torch.Tensor) -> torch.Tensor:
        """(N, H) level embedding -> (N, H) style of trunk layer `index`."""
        if self.styles is not None:
            return self.styles[index](embedding)
        if self.style_gain is not None:
            return torch.addcmul(self.style_offset[index], embedding, self.style_gain[index])
        raise ValueError("stylemod-nffb: modulation is off (modulation: false), there are no styles")

    def _trunk_layer(self, index: int, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        if not self.config.modulation:
            return super()._trunk_layer(index, h, embedding)
        layer, config = self.trunk[index], self.config
        weight, w0 = layer.weight, config.w0
        style = self.style(index, embedding)  # (N, H_in)
        if config.demodulation == "style_rms":
            # sin(w0 (W (s / rms(s) * h) + b)): the plain layer on the input scaled by the normalised style,
            # w0 / rms(s) one (N, 1) factor
            scale = w0 * torch.rsqrt((style * style).mean(dim=1, keepdim=True) + config.demodulation_eps)
            return torch.sin(torch.addcmul(w0 * layer.bias, (h * style) @ weight.t(), scale))
        # sin(w0 (d * (W (s * h)) + b)): rows of w * s applied to h, demodulated and rescaled per output
        # unit, w0 folded into the (N, H_out) factors and the bias (one fused multiply-add)
        demodulation = torch.rsqrt((style * style) @ (weight * weight).t() + config.demodulation_eps)
        scales = demodulation * (w0 * weight.norm(dim=1))
        return torch.sin(torch.addcmul(w0 * layer.bias, (h * style) @ weight.t(), scales))

    def _chain_styles(self) -> tuple[torch.Tensor | None, torch.Tensor | None] | None:
        if not self.config.modulation:
            return None, None
        if self.style_gain is None or self.config.demodulation != "style_rms":
            return None  # the linear style map or the exact demodulation: autograd's composition
        return self.style_gain, self.style_offset

    def _fused_extras(self) -> dict:
        extras: dict = {"eps": self.config.demodulation_eps, "demodulation": self.config.demodulation}
        if self.styles is not None:
            extras["styles"] = (
                torch.stack([style.weight for style in self.styles]),
                torch.stack([style.bias for style in self.styles]),
            )
        elif self.style_gain is not None:
            extras["styles"] = (self.style_gain, self.style_offset)
        if self.attention is not None:
            extras["attention"] = (self.attention.weight, self.attention.bias)
        return extras

    def level_attention(self, x: torch.Tensor, grid_features: torch.Tensor) -> torch.Tensor:
        """(N, L) softmax weights over the levels at points x (N, D) with grid features (N, L, F)."""
        if self.attention is None:
            raise ValueError("stylemod-nffb: attention is off (attention: false)")
        content = torch.cat([x / self.config.bound, grid_features.flatten(1)], dim=-1)
        return torch.softmax(self.attention(content), dim=-1)

    def _level_weights(self, x: torch.Tensor, grid_features: torch.Tensor) -> torch.Tensor | None:
        if self.attention is None:
            return None
        return self.level_attention(x, grid_features)
