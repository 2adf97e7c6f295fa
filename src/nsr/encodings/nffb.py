"""Neural Fourier Filter Bank (Wu, Jin and Yi, CVPR 2023), adapted to an IDR-style SDF field.

Per-level hash-grid features are band-limited by their own learned Fourier layer and injected,
coarse to fine, into a sine-activated (SIREN) trunk; the output sums one contribution per level.
The encoding returns `[x, features]`, so the SDF field's geometric (sphere) initialisation holds.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from nsr import checks
from nsr.encodings.bank_chain import BankChain
from nsr.encodings.base import Encoding
from nsr.encodings.hashgrid import HashGrid, HashGridConfig, check_grid_levels

logger = logging.getLogger(__name__)


@dataclass
class NFFBConfig:
    """Filter bank: hash grid (L levels) -> per-level Fourier filters -> SIREN trunk -> summed levels."""

    kind: Literal["nffb"] = "nffb"
    num_levels: int = 6
    """L, the number of grid levels; every level is used, and the trunk has L + 1 sine layers."""
    features_per_level: int = 2
    """F, features per grid level (any F works)."""
    log2_table_size: int = 19
    """log2 of the hash-table size T of each level."""
    base_resolution: int = 16
    """Resolution of the coarsest level."""
    finest_resolution: int = 512
    """Resolution of the finest level (levels grow geometrically in between)."""
    bound: float = 1.0
    """Inputs are expected in [-bound, bound]^D (the grid's domain; the trunk sees x / bound)."""
    hidden_dim: int = 64
    """Width H of the SIREN trunk and of each level's Fourier embedding."""
    out_features: int = 64
    """Width of the filter-bank features (the encoding outputs D * include_input more)."""
    base_sigma: float = 5.0
    """Standard deviation of the coarsest level's Fourier projection B_0."""
    exp_sigma: float = 1.2
    """Growth of the projection's standard deviation per level: sigma_i = base_sigma * exp_sigma^i."""
    w0: float = 30.0
    """SIREN frequency factor of the trunk's sine activations, sin(w0 (W h + b))."""
    include_input: bool = True
    """Put the raw input first in the output (needed for the SDF field's geometric init)."""
    interpolation: Literal["linear", "smoothstep"] = "linear"
    """Grid corner weights (see the hash-grid encoding)."""
    start_levels: int = 0
    """Coarse-to-fine: grid levels active at the start (0 = all); locked levels give zero features."""
    unlock_every: float = 0.0
    """Coarse-to-fine: one more grid level is unlocked every this fraction of the run."""
    backend: Literal["torch", "fused", "tcnn", "auto"] = "auto"
    """Hash-grid implementation (see the hash-grid encoding); the trunk is PyTorch, except as `fused_bank` says."""
    fused_bank: bool = True
    """With the fused grid on CUDA, evaluations without gradient (sphere tracing, meshing) run the whole bank
    as one Triton kernel (`nsr.accel.nffb_triton`); false: always the PyTorch trunk."""
    fused_bank_max_points: int = 0
    """The fused bank only for evaluations of at most this many points (0: any number). The kernel's time
    grows with the points where PyTorch's launch-bound bank stays flat, so above some size PyTorch may be
    faster (not so at the sizes of a training step on an H100 since the style-modulated bank's kernel
    takes 16 points a program: 17.6 against 25.6 ms a graphed step with every evaluation fused; the
    crossing itself is not measured)."""
    fused_bank_block: int = 0
    """Points per program of the fused bank's kernel (0: its default, `nsr.accel.nffb_triton`); a tuning knob."""
    fused_bank_warps: int = 0
    """Warps per program of the fused bank's kernel (0: its default); a tuning knob."""
    fused_bank_max_registers: int = 0
    """Registers a thread of the fused bank's kernel may use (0: the compiler's choice); a tuning knob."""
    fused_bank_mod_precision: Literal["auto", "ieee", "tf32x3", "tf32"] = "auto"
    """Precision of the style-modulated bank's style and demodulation products in the fused kernel (auto: that
    of its other products, fp32-accurate; tf32: one tensor-core pass)."""
    compile_training: bool = False
    """Evaluations with gradient that need no double backward (finite-difference normals: the `-fused` bank
    presets of both renderers) run the PyTorch bank's level chain compiled by `torch.compile` (Inductor: the
    sines, sums and biases fused into fewer kernels, activations recomputed in the backward pass rather than
    stored). For the NeuS bank step, which is memory-bound (benchmarks/RESULTS.md section 2). The first such
    evaluation compiles (tens of seconds); where compiling fails the run goes on eager, with a warning."""
    written_backward: Literal["auto", "on", "off"] = "auto"
    """`on`: eager evaluations with gradient that need no double backward run the trunk, injections and heads as
    one autograd function with its backward written out (`nsr.encodings.bank_chain.BankChain`: the levels batched
    wherever they are independent; 150 operations forward and backward against 259 for `nffb-fused`, 194 against
    566 for `stylemod-nffb-fused`, for an eager GPU step bound by its launches); `off`: autograd's composition
    (`NFFB._chain`, its reference); `auto`: `on` on CUDA, `off` elsewhere. Measured (benchmarks/RESULTS.md
    section 2, an H100, graphed IDR steps of 2048 rays, alternated in one process, 2026-12-08): the plain bank's
    step 7.01 against 7.86 ms, the style bank's 8.97-9.11 ms, once its sums over the points ran in chunks
    (`bank_chain.level_products`; as single batched products they took 208 us each, and the plain bank's step was
    faster without the chain). On a CPU the batched (L, N, H) tensors cost more memory traffic than the operations
    save (209 against 156 ms at 16384 points on 2 cores). The style bank takes it with the cheaper modulation only
    (`style_map: diagonal`, `demodulation: style_rms`). It keeps whole (L, N, H) tensors for its backward pass
    (four for the plain bank; six and an (L, N, O) one for the style bank), more than autograd's composition
    keeps: `off` where a large eager evaluation runs short of GPU memory. The NeuS `-fused` bank presets compile
    their chain instead (`compile_training`, which comes first)."""

    def validate(self) -> None:
        check_grid_levels(self)
        checks.positive("hidden_dim", self.hidden_dim)
        checks.positive("out_features", self.out_features)
        checks.positive("base_sigma", self.base_sigma)
        checks.non_negative("fused_bank_max_points", self.fused_bank_max_points, "0 = any number")
        checks.non_negative("fused_bank_block", self.fused_bank_block, "0 = the kernel's default")
        checks.non_negative("fused_bank_warps", self.fused_bank_warps, "0 = the kernel's default")
        if self.fused_bank_max_registers and not 24 <= self.fused_bank_max_registers <= 255:
            raise ValueError(
                f"fused-bank-max-registers {self.fused_bank_max_registers}: must be 0 (the compiler's choice) "
                "or 24 to 255"
            )
        for name in ("fused_bank_block", "fused_bank_warps"):
            value = getattr(self, name)
            if value & (value - 1):
                raise ValueError(f"{name.replace('_', '-')} {value}: must be 0 or a power of two")
        checks.positive("exp_sigma", self.exp_sigma)
        checks.positive("w0", self.w0)
        checks.one_of("written_backward", self.written_backward, ("auto", "on", "off"))

    def build(self, in_dim: int) -> NFFB:
        return NFFB(in_dim, self)

    def grid_config(self) -> HashGridConfig:
        """The hash grid this filter bank reads its per-level features from."""
        return HashGridConfig(
            num_levels=self.num_levels,
            features_per_level=self.features_per_level,
            log2_table_size=self.log2_table_size,
            base_resolution=self.base_resolution,
            finest_resolution=self.finest_resolution,
            bound=self.bound,
            interpolation=self.interpolation,
            include_input=False,
            backend=self.backend,
            start_levels=self.start_levels,
            unlock_every=self.unlock_every,
        )


def siren_init_(layer: nn.Linear, w0: float, first: bool) -> None:
    """SIREN initialisation: first layer U(+-1/n_in), later layers U(+-sqrt(6/n_in)/w0) (weights and biases)."""
    n_in = layer.weight.shape[1]
    limit = 1.0 / n_in if first else math.sqrt(6.0 / n_in) / w0
    with torch.no_grad():
        layer.weight.uniform_(-limit, limit)
        layer.bias.uniform_(-limit, limit)


class NFFB(Encoding):
    """x (N, D) in [-bound, bound] -> (N, D * include_input + out_features).

    With g_i (N, F) the features of grid level i and e_i = sin(2 pi g_i B_i) (N, H) their Fourier
    embedding (B_i (F, H) learned, initialised N(0, sigma_i^2), sigma_i growing with the level):

        h_0 = sin(w0 (W_0 x / bound + b_0))
        h_l = sin(w0 (W_l h_{l-1} + b_l)) + e_{l-1}          for l = 1 .. L
        out = sum_l a_l (V_l h_l + c_l)                       a_l = 1 / L here

    i.e. coarse bands enter early and fine bands deeper, and every post-injection state has its
    own linear head (equivalent to one linear layer on their concatenation, divided by L, as in the
    released SDF model). The style-modulated variant overrides `_trunk_layer`, `_level_weights` and
    `_chain_styles`.
    """

    def __init__(self, in_dim: int, config: NFFBConfig) -> None:
        super().__init__()
        if config.num_levels < 1 or config.hidden_dim < 1 or config.out_features < 1:
            raise ValueError(
                f"{config.kind}: num_levels ({config.num_levels}), hidden_dim ({config.hidden_dim}) "
                f"and out_features ({config.out_features}) must be >= 1"
            )
        self.config = config
        self.fused_unavailable: str | None = None
        """Why the fused kernel failed, once it has (evaluations then run the PyTorch trunk)."""
        self.compile_unavailable: str | None = None
        """Why `compile_training`'s compiled chain failed, once it has (evaluations then run eagerly)."""
        self.written_unavailable: str | None = None
        """Why `BankChain` failed, once it has (evaluations then use autograd's composition)."""
        self.double_backward = False
        """Whether a model differentiates the bank's gradient (analytic normals): no compiled chain then."""
        self.in_dim = in_dim
        self.includes_input = config.include_input
        self.out_dim = in_dim * int(config.include_input) + config.out_features
        levels, feats, hidden = config.num_levels, config.features_per_level, config.hidden_dim
        self.grid: HashGrid = config.grid_config().build(in_dim)
        sigmas = config.base_sigma * config.exp_sigma ** torch.arange(levels, dtype=torch.float32)
        self.projections = nn.Parameter(torch.randn(levels, feats, hidden) * sigmas[:, None, None])
        self.first = nn.Linear(in_dim, hidden)
        siren_init_(self.first, config.w0, first=True)
        self.trunk = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(levels))
        for layer in self.trunk:
            siren_init_(layer, config.w0, first=False)
        limit = 1.0 / math.sqrt(hidden)
        self.head_weight = nn.Parameter(
            torch.empty(levels, hidden, config.out_features).uniform_(-limit, limit)
        )
        self.head_bias = nn.Parameter(torch.empty(levels, config.out_features).uniform_(-limit, limit))

    def set_progress(self, progress: float) -> None:
        self.grid.set_progress(progress)

    def schedule_key(self) -> tuple:
        return self.grid.schedule_key()

    def finite_difference_step(self) -> float | None:
        return self.grid.finite_difference_step()

    def total_variation(self) -> torch.Tensor | None:
        return self.grid.total_variation()

    def require_double_backward(self) -> None:
        self.double_backward = True
        self.grid.require_double_backward()

    def _first_layer(self, x: torch.Tensor) -> torch.Tensor:
        """sin(w0 (W x / bound + b)), w0 and 1 / bound folded into the (H, D) weights."""
        w0 = self.config.w0
        return torch.sin(
            nn.functional.linear(x, (w0 / self.config.bound) * self.first.weight, w0 * self.first.bias)
        )

    def _trunk_layer(self, index: int, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Trunk layer `index` (0-based among the L injected layers) before its injection: sin(w0 (W h + b)).
        `embedding`: the layer's level embedding (N, H), which a subclass may use (the style-modulated
        bank's style). w0 is folded into the (H, H) weights, not applied to the (N, H) product."""
        layer, w0 = self.trunk[index], self.config.w0
        return torch.sin(nn.functional.linear(h, w0 * layer.weight, w0 * layer.bias))

    def _chain_styles(self) -> tuple[torch.Tensor | None, torch.Tensor | None] | None:
        """The per-level (gain, offset) styles (L, H) that `BankChain` modulates the trunk with, (None, None) for
        none; None where the bank's modulation is not one `BankChain` does (a subclass's)."""
        return None, None

    def _level_weights(self, x: torch.Tensor, grid_features: torch.Tensor) -> torch.Tensor | None:
        """(N, L) weights of the levels' contributions; None = the plain mean over levels."""
        return None

    def fused_inference(self, x: torch.Tensor) -> bool:
        """Whether an evaluation at x runs the bank as one Triton kernel (`nsr.accel.nffb_triton`): without a
        gradient (sphere tracing, meshing), on CUDA, with the fused grid, float32, widths the kernel takes and at
        most `fused_bank_max_points` points."""
        if (
            not self.config.fused_bank
            or self.fused_unavailable
            or torch.is_grad_enabled()
            or not x.is_cuda
            or x.dtype != torch.float32
            or self.grid.backend != "fused"
            or 0 < self.config.fused_bank_max_points < x.shape[0]
        ):
            return False
        from nsr.accel.nffb_triton import supports

        return supports(self.config.hidden_dim, self.config.out_features)

    def fused_forward(self, x: torch.Tensor, grid_features: torch.Tensor, **knobs) -> torch.Tensor:
        """The bank's output from x (N, D) and its grid features (N, L, F) by the fused kernel (forward only);
        `knobs`: the kernel's tuning arguments (`filter_bank_forward`'s block, precision, num_warps,
        max_registers)."""
        from nsr.accel.nffb_triton import filter_bank_forward

        config = self.config
        if config.fused_bank_block:
            knobs.setdefault("block", config.fused_bank_block)
        if config.fused_bank_warps:
            knobs.setdefault("num_warps", config.fused_bank_warps)
        if config.fused_bank_max_registers:
            knobs.setdefault("max_registers", config.fused_bank_max_registers)
        if config.fused_bank_mod_precision != "auto" and "styles" in self._fused_extras():
            knobs.setdefault("mod_precision", config.fused_bank_mod_precision)
        return filter_bank_forward(
            x,
            grid_features,
            (self.first.weight, self.first.bias),
            self.projections,
            (torch.stack([t.weight for t in self.trunk]), torch.stack([t.bias for t in self.trunk])),
            (self.head_weight, self.head_bias),
            bound=self.config.bound,
            w0=self.config.w0,
            include_input=self.config.include_input,
            **self._fused_extras(),
            **knobs,
        )

    def _fused_extras(self) -> dict:
        """Keyword arguments of `filter_bank_forward` for what a subclass adds (styles, attention)."""
        return {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid_features = self.grid.level_features(x)  # (N, L, F)
        if self.fused_inference(x):
            try:
                return self.fused_forward(x, grid_features)
            except Exception as error:  # e.g. Triton cannot build the kernel here: the run goes on without it
                self.fused_unavailable = f"{type(error).__name__}: {error}"
                logger.warning(
                    "%s: the fused filter-bank kernel failed (%s); evaluations run the PyTorch trunk",
                    self.config.kind,
                    self.fused_unavailable,
                )
        if self.compiles(x):
            try:
                return self._compiled_chain(x, grid_features)
            except Exception as error:  # e.g. no C++ compiler for Inductor on a CPU: the run goes on eagerly
                self.compile_unavailable = f"{type(error).__name__}: {str(error).splitlines()[0]}"
                logger.warning(
                    "%s: compiling the bank's training chain failed (%s); evaluations run eagerly",
                    self.config.kind,
                    self.compile_unavailable,
                )
        if self.writes_backward(x):
            try:
                return self._written_chain(x, grid_features)
            # a device or build where its operations fail: the run goes on without it
            except Exception as error:
                self.written_unavailable = f"{type(error).__name__}: {str(error).splitlines()[0]}"
                logger.warning(
                    "%s: the written-out training chain failed (%s); evaluations use autograd's composition",
                    self.config.kind,
                    self.written_unavailable,
                )
        return self._chain(x, grid_features)

    def writes_backward(self, x: torch.Tensor) -> bool:
        """Whether an evaluation at x runs `BankChain` (`written_backward`; under `auto`, on CUDA):
        eager, with gradient, for a model that never differentiates the bank's gradient, with a modulation it does
        (`_chain_styles`)."""
        written, styles = self.config.written_backward, self._chain_styles()
        if written == "off" or styles is None:
            return False
        if written == "auto" and not x.is_cuda:
            return False
        return (
            torch.is_grad_enabled()
            and not self.double_backward
            and not torch.compiler.is_compiling()
            and not self.written_unavailable
        )

    def _written_chain(self, x: torch.Tensor, grid_features: torch.Tensor) -> torch.Tensor:
        """`_chain` as `BankChain`: the same values and first-order gradients in fewer operations."""
        gain, offset = self._chain_styles()
        features = BankChain.apply(
            self._first_layer(x),
            grid_features,
            self.projections,
            torch.stack([layer.weight for layer in self.trunk]),
            torch.stack([layer.bias for layer in self.trunk]),
            self.head_weight,
            self.head_bias,
            self._level_weights(x, grid_features),
            gain,
            offset,
            self.config.w0,
            getattr(self.config, "demodulation_eps", 0.0),
        )
        return torch.cat([x, features], dim=-1) if self.config.include_input else features

    def compiles(self, x: torch.Tensor) -> bool:
        """Whether an evaluation at x runs `compile_training`'s compiled chain: with gradient, for a model
        that never differentiates the bank's gradient (Inductor's backward is not differentiable again)."""
        return (
            self.config.compile_training
            and torch.is_grad_enabled()
            and not self.double_backward
            and not self.compile_unavailable
        )

    @functools.cached_property
    def _compiled_chain(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """`_chain` compiled at its first use; dynamic=False: one graph for the fixed size of a training step
        (other sizes compile again)."""
        return torch.compile(self._chain, fullgraph=True, dynamic=False)

    def _chain(self, x: torch.Tensor, grid_features: torch.Tensor) -> torch.Tensor:
        """The PyTorch bank from x (N, D) and its grid features (N, L, F): trunk, injections and heads."""
        weights = self._level_weights(x, grid_features)  # (N, L), None for a_l = 1 / L
        if weights is None:
            heads = self.head_weight / self.config.num_levels  # 1 / L on the (L, H, O) heads, not per point
            features = self.head_bias.mean(0).expand(x.shape[0], -1)
        else:
            heads = self.head_weight
            features = weights @ self.head_bias
        # Level by level: each embedding made as its layer needs it and sum_l a_l (V_l h_l + c_l)
        # accumulated, so no (N, L, H) tensor is made, nor the stack of its pieces' gradients the backward
        # pass would make (a NeuS step evaluates the bank at several hundred thousand points with gradient,
        # where such a tensor is a gigabyte: 1.6x the training path's speed on a CPU). The per-level
        # parameters are scaled and split once (unbind: one stack in the backward pass, where indexing
        # them level by level makes a zero-filled gradient per level and sums them)
        filters = (2 * math.pi * self.projections).unbind(0)
        level_heads = heads.unbind(0)
        levels = self.config.num_levels
        level_weights = [None] * levels if weights is None else weights.unsqueeze(2).unbind(1)  # L x (N, 1)
        h = self._first_layer(x)
        for index, (level_features, filter_, head, weight) in enumerate(
            zip(grid_features.unbind(1), filters, level_heads, level_weights, strict=True)
        ):
            embedding = torch.sin(level_features @ filter_)  # e_i = sin(2 pi g_i B_i), (N, H)
            h = self._trunk_layer(index, h, embedding) + embedding
            features = torch.addmm(features, h if weight is None else h * weight, head)
        return torch.cat([x, features], dim=-1) if self.config.include_input else features
