"""Presets: one per configuration family. The command line overrides any field of a preset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nsr.config.io import ConfigError
from nsr.config.train import DataConfig, OptimConfig, TrainConfig
from nsr.encodings import (
    EncodingConfig,
    FourierFeaturesConfig,
    HashGridConfig,
    NFFBConfig,
    PositionalEncodingConfig,
    StyleModNFFBConfig,
)
from nsr.fields import AppearanceFieldConfig, SDFFieldConfig
from nsr.models import IDRLossConfig, IDRModelConfig, NeuSLossConfig, NeuSModelConfig
from nsr.renderers import OccupancyGridConfig, SphereTracerConfig, VolumeRendererConfig

CAMERA_STEPS_FACTOR = 1.5
"""The `-cams` variants of the IDR grid, filter-bank and demo presets train this many times the preset's steps,
with the same schedules in fractions of the run. After the surface has formed, each trained camera converges
slowly along the one direction its images hardly constrain (an orbit about the object), and is still
converging when the preset's steps end: on the CPU demo scene (`demo-cams`, 3 deg / 3%, seeds 0-1, 2026-12-07,
benchmarks/RESULTS.md section 6) the mean rotation error fell 0.80 -> 0.47 -> 0.38 -> 0.28 -> 0.23 deg over the
last half of a 2000-step run (`benchmarks/camera_trajectory.py`), and 3000 steps ended at 0.168 / 0.209 deg mean,
0.40 / 0.55 deg max against 0.225 / 0.336 and 0.67 / 0.82 at 2000. A camera learning rate kept higher to the end
instead ended noisier (0.36 / 0.41 deg), a lower one slower (0.25 / 0.35 deg). On the GPU (one H100, the
synthesised banana, 3 deg / 3%, benchmarks/experiments/camera_steps.yaml, RESULTS.md section 5) 22500 steps of
`hashgrid-fused-cams` ended at 0.120-0.177 deg mean, 0.38 deg max, Chamfer 0.94-0.98x the fixed cameras' (seeds 0,
1, 3), where one seed's 15000-step run beside it ended at 0.241 / 0.599 deg, 1.11x."""


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    make: Callable[[], TrainConfig]
    camera_lr_factor: float = 1.0
    """Camera learning rate of the NAME-cams variant, as a multiple of the model's (see
    `with_trained_cameras`)."""
    fill_pockets: bool = True
    """Whether the NAME-cams variant fills hidden pockets while training (see `with_trained_cameras`)."""
    camera_steps_factor: float = CAMERA_STEPS_FACTOR
    """Steps of the NAME-cams variant, as a multiple of the preset's (see `with_trained_cameras`)."""


def positional() -> TrainConfig:
    """IDR as published (NeRF positional encoding, 8x512 SDF MLP, 4x512 appearance MLP), fixed cameras.

    IDR's epoch-based schedules (DTU: 49 images of 2048 pixels per epoch, 2000 epochs = 98000 steps of
    2048 rays): alpha milestones every 250 epochs and learning-rate milestones at 1000 and 1500 epochs,
    written as fractions of the run.
    """
    epoch = 49
    return TrainConfig(
        model=IDRModelConfig(
            sdf=SDFFieldConfig(
                encoding=PositionalEncodingConfig(num_frequencies=6),
                hidden_dim=512,
                num_layers=8,
                skip_layers=(4,),
                feature_dim=256,
            ),
            appearance=AppearanceFieldConfig(
                view_encoding=PositionalEncodingConfig(num_frequencies=4), hidden_dim=512, num_layers=4
            ),
            tracer=SphereTracerConfig(),
            loss=IDRLossConfig(
                eikonal_weight=0.1,
                mask_weight=100.0,
                alpha_milestones=tuple(e / 2000 for e in (250, 500, 750, 1000, 1250)),
            ),
        ),
        optim=OptimConfig(lr=1e-4, lr_milestones=(1000 / 2000, 1500 / 2000), lr_factor=0.5),
        steps=epoch * 2000,
        rays_per_batch=2048,
        checkpoint_every=2000,
        val_every=2000,
    )


def demo() -> TrainConfig:
    """A small positional-encoding IDR that reconstructs the generated scene in minutes on a laptop CPU."""
    return TrainConfig(
        data=DataConfig(holdout_every=8),
        model=IDRModelConfig(
            sdf=SDFFieldConfig(
                encoding=PositionalEncodingConfig(num_frequencies=6),
                hidden_dim=128,
                num_layers=4,
                skip_layers=(2,),
                feature_dim=64,
            ),
            appearance=AppearanceFieldConfig(
                view_encoding=PositionalEncodingConfig(num_frequencies=2), hidden_dim=128, num_layers=2
            ),
            tracer=SphereTracerConfig(num_samples=64, mask_samples=32),
            loss=IDRLossConfig(eikonal_weight=0.1, mask_weight=100.0, alpha_milestones=(0.2, 0.4, 0.6, 0.8)),
        ),
        optim=OptimConfig(lr=5e-4, lr_milestones=(1200 / 2000, 1700 / 2000), lr_factor=0.5),
        steps=2000,
        rays_per_batch=1024,
        checkpoint_every=250,
        val_every=500,
    )


def fourier() -> TrainConfig:
    """Random Fourier features for points and view directions with IDR's networks (8x256 SDF MLP)."""
    config = positional()
    config.model.sdf.encoding = FourierFeaturesConfig(width=64, sigma=1.0)
    config.model.sdf.hidden_dim = 256
    config.model.appearance.view_encoding = FourierFeaturesConfig(width=16, sigma=1.0)
    config.model.appearance.hidden_dim = 256
    config.optim.lr = 5e-4
    return config


FAST_STEPS = 15000
"""Nominal length of the grid and filter-bank presets; their schedules were set (and measured) in steps of
a run this long and are written as fractions of it."""


def _fast(
    encoding: EncodingConfig,
    view_encoding: EncodingConfig,
    gradient: str = "analytic",
    encoding_lr: float = 1e-2,
) -> TrainConfig:
    """The shared recipe of the grid and filter-bank presets: a rich encoding, small MLPs (2x64 SDF,
    2x64 appearance), higher learning rates, the whole training step captured as one CUDA graph on GPUs
    (2.3x the steps per second of `hashgrid-fused` and `nffb-fused` on an H200; the `-cams` variants' pocket
    fill falls back to ordinary steps with the fixed-shape tracer graphed alone),
    and schedules sized for minutes of training (15000 steps; every schedule is in fractions of the run, so
    `--steps` or `--max-seconds` stretch or shrink all of it), not IDR's hours."""
    config = TrainConfig(
        model=IDRModelConfig(
            sdf=SDFFieldConfig(
                encoding=encoding,
                hidden_dim=64,
                num_layers=2,
                skip_layers=(),
                feature_dim=32,
                gradient=gradient,
            ),
            appearance=AppearanceFieldConfig(view_encoding=view_encoding, hidden_dim=64, num_layers=2),
            tracer=SphereTracerConfig(mode="auto", cuda_graph=True),
            loss=IDRLossConfig(
                eikonal_weight=0.1,
                mask_weight=100.0,
                alpha_milestones=tuple(k / FAST_STEPS for k in (1000, 2000, 3000, 4000, 5000)),
            ),
        ),
        optim=OptimConfig(
            lr=1e-3,
            encoding_lr=encoding_lr,
            lr_milestones=(8000 / FAST_STEPS, 12000 / FAST_STEPS),
            lr_factor=0.3,
        ),
        steps=FAST_STEPS,
        rays_per_batch=2048,
        checkpoint_every=1000,
        val_every=1000,
        cuda_graph_step=True,
    )
    return _paced(config)


FAST_IO_SECONDS = 30.0
"""Training seconds at least between two step checkpoints and between two validation views of the grid and
filter-bank presets; at a few hundred steps a second a 1000-step cadence would write a 130 MiB checkpoint
and render a view every few seconds. On Spot (`hashgrid-fused`, 120 s, one H200, 2026-12-06) the run took 143 s
in all with this pacing against 190 s by steps alone, at the same Chamfer (0.143 / 0.142%)."""


def _paced(config: TrainConfig) -> TrainConfig:
    """The GPU presets' periodic work paced by training time as well as by steps (`*_min_seconds`)."""
    config.checkpoint_min_seconds = config.val_min_seconds = FAST_IO_SECONDS
    config.health.keep_good_min_seconds = 2.0
    return config


def _points_grid(backend: str) -> HashGridConfig:
    return HashGridConfig(
        num_levels=16,
        features_per_level=2,
        log2_table_size=19,
        base_resolution=16,
        finest_resolution=1024,
        backend=backend,
        start_levels=6,
        unlock_every=250 / FAST_STEPS,
    )


HASHGRID_FINAL_LR = 0.03
"""The IDR hash-grid presets (and the plain filter bank's: `FILTER_BANK_IDR_UNLOCK_EVERY`) decay their learning
rates exponentially (instant-ngp, NeuS2) to this fraction of the start over the run, instead of `_fast`'s two
x0.3 steps at 53% and 80% of it (a final 0.09x). On Spot (`hashgrid-fused`, one H200, 2026-12-06, seeds 0-2, each
budget its own run): 0.156% (0.150-0.167) Chamfer at 30 s, 0.144% (0.139-0.148) at 60 s, 0.139% (0.135-0.141) at
120 s, against 0.162 / 0.161 / 0.148% with the steps; a cosine decay to 0.03 was 0.141 / 0.155% at 120 s (seeds
0-1; benchmarks/RESULTS.md section 2). The CPU `demo` preset keeps its steps: on the generated scene at 120 s
(seeds 0-2, 2-core CPU) they gave 0.259% against 0.325% / 0.355% with exponential decays to 0.1x / 0.03x
(RESULTS.md section 6)."""


def _exponential_decay(config: TrainConfig) -> TrainConfig:
    """`HASHGRID_FINAL_LR`'s exponential decay on a `_fast` config (its step milestones cleared: unused)."""
    config.optim.schedule, config.optim.final_factor = "exponential", HASHGRID_FINAL_LR
    config.optim.lr_milestones = ()
    return config


def hashgrid() -> TrainConfig:
    """Hash grid for points and for view directions (PyTorch reference backend, analytic eikonal)."""
    views = HashGridConfig(
        num_levels=4, log2_table_size=12, base_resolution=4, finest_resolution=32, backend="torch"
    )
    return _exponential_decay(_fast(_points_grid("torch"), views))


def hashgrid_pe() -> TrainConfig:
    """Hash grid for points, positional encoding for view directions (PyTorch reference backend)."""
    return _exponential_decay(_fast(_points_grid("torch"), PositionalEncodingConfig(num_frequencies=4)))


def hashgrid_fused() -> TrainConfig:
    """Hash grid on the fastest backend (`auto`: NSR's fused Triton kernel on CUDA, the original's
    tiny-cuda-nn variant), finite-difference eikonal gradient (the kernel is first-order), positional
    view directions. On a CPU it runs the PyTorch grid with the same finite differences."""
    return _exponential_decay(
        _fast(_points_grid("auto"), PositionalEncodingConfig(num_frequencies=4), gradient="finite_difference")
    )


FILTER_BANK_TABLE_LR = 1e-3
"""Grid-table learning rate of the filter-bank presets. On Spot (one H100, 2026-11-27) 1e-2, the hash
grid's rate, made them worse (nffb-fused 2.95% Chamfer at 120 s against 0.91% at 1e-3): every table
change goes through Fourier filters of growing bandwidth, so large steps make the SDF oscillate away from
the supervised surface."""


FILTER_BANK_SIGMA = 1.0
"""Standard deviation of the coarsest level's Fourier filter in the filter-bank presets (sigma_i =
FILTER_BANK_SIGMA * 1.2^i). The paper's 5.0 multiplies every table change by 2 pi sigma_i (30 to 110 for
8 levels) before it reaches the trunk: under IDR's sparse supervision that made the surface noisy and
worse with training time on Spot (benchmarks/history/2026-11.md). Lower (0.5), a slower trunk (w0 1.5) or a
larger eikonal weight (0.3) did not help beyond the seed spread (one H200, 2026-12-04, benchmarks/RESULTS.md
section 4); under schedules that follow the run's length the banks improve from 120 s to 300 s."""


def _filter_bank(config_cls: Callable[..., NFFBConfig], backend: str) -> NFFBConfig:
    """8 levels (16 to 1024) with a slow sine trunk (w0 = 3): the trunk carries the smooth shape and the
    grid levels' Fourier filters the detail. The paper's w0 = 30-45 suits dense SDF supervision but,
    under IDR's eikonal and image losses, lets the first MLP layer turn the trunk's high-frequency
    sines into a noisy SDF within tens of steps. Levels unlock coarse to fine.

    Both banks run their evaluations without gradient as one fused kernel (`fused_bank`; used where the
    grid is the fused one): the graphed IDR step of `stylemod-nffb-fused` at 2048 rays takes 17.6 ms with
    it against 25.6 ms without on an H100 (16 points a program; `nffb-fused` 9.8 ms; benchmarks/RESULTS.md,
    "Step time and GPU use")."""
    return config_cls(
        fused_bank=True,
        num_levels=8,
        base_resolution=16,
        finest_resolution=1024,
        hidden_dim=64,
        out_features=64,
        base_sigma=FILTER_BANK_SIGMA,
        w0=3.0,
        backend=backend,
        start_levels=2,
        unlock_every=500 / FAST_STEPS,
    )


def _filter_bank_views() -> PositionalEncodingConfig:
    """View directions of the filter-bank presets: positional, 4 frequencies (a fresh config each call).

    A filter bank on the view directions too (as the original configured it, 4 dense levels of 4 to 32
    cells) fits the training views but not new ones: on Spot (one H100, 2026-11-27) it left 9.5-10 dB
    held-out PSNR inside the mask with w0 = 30 / sigma 5 and with w0 = 3 / sigma 1 alike, against 19-24 dB
    at 300 s with positional view directions. The training rays cover only a few narrow cones of
    directions, so most of a direction grid is never trained. `nffb` on view directions stays available
    (`--model.appearance.view-encoding nffb`)."""
    return PositionalEncodingConfig(num_frequencies=4)


FILTER_BANK_IDR_UNLOCK_EVERY = 0.1
"""Fraction of the run between two level unlocks of the IDR filter-bank presets (2 levels at the start, all 8 by 60%
of the run), which also take the hash grid's exponential decay (`HASHGRID_FINAL_LR`). With all 8 levels unlocked by
20% of the run at the full learning rate (`_filter_bank`'s 500 / 15000 under `_fast`'s steps) the bank's eikonal loss
grew mid-run (0.04 to 0.18-0.21 on the synthesised armadillo): its SDF stopped being a distance where the detail is.
`nffb-fused` on one H100 at 120 s, each run alone, seeds 0 / 1 (2026-12-06, benchmarks/RESULTS.md section 4):
armadillo 0.154 / 0.156% Chamfer against 0.391 / 0.542%, fuze bottle 0.119 / 0.121% against 0.133 / 0.136%, Spot
0.148 / 0.141% against 0.141 / 0.143% (the hash grid: 0.139, 0.108 and 0.138%, seed 0). The style-modulated bank
drifted the same way on a 2-core CPU (2500 steps of 512 rays, seed 0: eikonal up to 0.15-0.46 mid-run)
and the same schedule took it from 0.404 to 0.257% on the armadillo, from 0.371 to 0.263% on Spot and from 0.388
to 0.272% on the fuze bottle. With it on the H100 (alone, 120 s, seed 0, ninth session) the style bank ended at
0.207% on the armadillo, 0.148% on Spot and 0.170% on the fuze bottle, on 0.42x the plain bank's steps
(benchmarks/experiments/banks_idr_style.yaml; its schedule as it was not rerun on the GPU)."""


def _idr_bank(config_cls: Callable[..., NFFBConfig], backend: str, gradient: str = "analytic") -> TrainConfig:
    """The IDR filter-bank presets: `_fast` with the banks' table learning rate, their levels unlocked
    over 60% of the run and the exponential decay (`FILTER_BANK_IDR_UNLOCK_EVERY`)."""
    encoding = _filter_bank(config_cls, backend)
    encoding.unlock_every = FILTER_BANK_IDR_UNLOCK_EVERY
    config = _fast(encoding, _filter_bank_views(), gradient=gradient, encoding_lr=FILTER_BANK_TABLE_LR)
    return _exponential_decay(config)


def nffb() -> TrainConfig:
    """Neural Fourier Filter Bank for points (PyTorch grid, analytic eikonal), positional view directions."""
    return _idr_bank(NFFBConfig, "torch")


STYLE_BANK_MODULATION = {"style_map": "diagonal", "demodulation": "style_rms"}
"""The style-bank presets' modulation, under both renderers: a gain and an offset per channel for the style and the
style divided by its root mean square for the demodulation (`StyleModNFFBConfig`), which leave the bank with the
plain bank's matrix products. IDR, on one H100 (2026-12-07): the graphed `stylemod-nffb-fused` step of 2048 rays
11.78 ms against 21.81 ms with the exact modulation (`nffb-fused` 8.42 ms: 0.71x its steps a second against 0.39x);
at 120 s, each run alone, seed 0, 84 it/s against 48, Chamfer 0.176% against 0.191% on the synthesised armadillo
(same call), 0.131% on the fuze bottle and 0.154% on Spot against the exact modulation's 0.170% and 0.148% (H100,
2026-12-06; benchmarks/experiments/banks_idr_light.yaml, benchmarks/RESULTS.md section 4); at equal steps (2500,
2-core CPU) the armadillo 0.244% against 0.273%, the fuze bottle 0.256% against 0.288%. NeuS, compiled chain: the
graphed step of 1024 rays 32.36 against 47.33 ms (`neus-nffb-fused` 25.48 ms); at 120 s, seed 0, two runs a GPU
(H100, seventeenth session, benchmarks/experiments/banks_neus_light.yaml): Spot 0.611% against 1.097% (1112 against
876 steps), the fuze bottle 0.711% against 0.892% (1620 against 1205 steps)."""


def _modulated_style_bank(**fields) -> StyleModNFFBConfig:
    """`StyleModNFFBConfig` with `STYLE_BANK_MODULATION`: the style-bank presets' encoding."""
    return StyleModNFFBConfig(**fields, **STYLE_BANK_MODULATION)


def _idr_style_bank(backend: str, gradient: str = "analytic") -> TrainConfig:
    """The IDR style-bank presets: `_idr_bank` with `STYLE_BANK_MODULATION`."""
    return _idr_bank(_modulated_style_bank, backend, gradient=gradient)


def stylemod_nffb() -> TrainConfig:
    """Style-modulated filter bank (modulated/demodulated trunk, attention over levels) for points (PyTorch
    grid, analytic eikonal), positional view directions."""
    return _idr_style_bank("torch")


def stylemod_nffb_fused() -> TrainConfig:
    """Style-modulated filter bank on the fastest hash-grid backend (the fused Triton kernel on CUDA, the
    kernel `nffb-fused` uses), finite-difference eikonal gradient (the kernel is first-order)."""
    return _idr_style_bank("auto", gradient="finite_difference")


def nffb_fused() -> TrainConfig:
    """Filter bank on the fastest hash-grid backend (fused Triton kernel on CUDA), finite-difference
    eikonal gradient."""
    return _idr_bank(NFFBConfig, "auto", gradient="finite_difference")


# ------------------------------------------------------------------------------------------- NeuS
def _neus(
    sdf: SDFFieldConfig,
    appearance: AppearanceFieldConfig,
    optim: OptimConfig,
    steps: int,
    rays_per_batch: int,
    renderer: VolumeRendererConfig | None = None,
) -> TrainConfig:
    """The NeuS recipe around given fields: NeuS's losses (eikonal 0.1, opacity-mask BCE 0.1), its learned
    variance and cosine annealing over the first tenth of the run, a constant background colour with
    masks (a learned NeRF++ background without them: `without_masks`)."""
    return TrainConfig(
        model=NeuSModelConfig(
            sdf=sdf,
            appearance=appearance,
            renderer=renderer or VolumeRendererConfig(background="constant"),
            loss=NeuSLossConfig(eikonal_weight=0.1, mask_weight=0.1),
            cos_anneal=0.1,
        ),
        optim=optim,
        steps=steps,
        rays_per_batch=rays_per_batch,
        checkpoint_every=1000,
        val_every=1000,
    )


def neus_positional() -> TrainConfig:
    """NeuS as published: positional encoding, 8x256 SDF MLP, 4x256 colour MLP, 64 + 64 samples per ray,
    512 rays per step, learning rate 5e-4 with a warm-up and cosine decay to 0.05 (NeuS: 300k steps; the
    schedule is in fractions of the run)."""
    sdf = SDFFieldConfig(
        encoding=PositionalEncodingConfig(num_frequencies=6),
        hidden_dim=256,
        num_layers=8,
        skip_layers=(4,),
        feature_dim=256,
        init_radius=0.5,
    )
    appearance = AppearanceFieldConfig(
        view_encoding=PositionalEncodingConfig(num_frequencies=4), hidden_dim=256, num_layers=4
    )
    optim = OptimConfig(lr=5e-4, schedule="cosine", warmup=5000 / 300000, final_factor=0.05)
    return _neus(sdf, appearance, optim, steps=300000, rays_per_batch=512)


def neus_demo() -> TrainConfig:
    """A small NeuS (the `demo` networks) for the generated scene on a CPU: 256 rays of 24 + 24 samples per
    step, placed by an occupancy grid of 32^3 cells (it keeps the grid the GPU presets dropped: without
    it 0.887% against 0.766% Chamfer at 420 s on the 2-core CPU, one run each; benchmarks/RESULTS.md
    section 6). Inside the masks the colour loss is its expectation over a random background colour
    (`loss.masked_background: uniform`): the preset's 2000 steps alone on the 2-core CPU, seeds 0-1, gave
    0.356 / 0.313% Chamfer against 0.487 / 0.433% with the scene's background (held-out PSNR 33.5 against
    30.6 dB, in-mask 34.0 against 33.5 dB on seed 1; RESULTS.md section 4)."""
    config = demo()
    renderer = VolumeRendererConfig(
        background="constant",
        num_samples=24,
        num_importance=24,
        up_sample_steps=2,
        occupancy=OccupancyGridConfig(enabled=True, resolution=32),
    )
    optim = OptimConfig(lr=5e-4, schedule="cosine", warmup=0.025, final_factor=0.05)
    neus = _neus(config.model.sdf, config.model.appearance, optim, 2000, 256, renderer)
    neus.data.holdout_every = 8
    neus.checkpoint_every, neus.val_every = 250, 500
    neus.model.loss.masked_background = "uniform"
    return neus


NEUS_CURVATURE = (5e-4, 0.1)
"""Curvature loss weight of the NeuS grid and filter-bank presets, and the fraction of the run over which it
ramps up from 0 (Neuralangelo's finite-difference Laplacian on the ray samples)."""


def _neus_fast(
    encoding: EncodingConfig, gradient: str = "analytic", encoding_lr: float = 1e-2
) -> TrainConfig:
    """The grid and filter-bank recipe under NeuS: the same encodings and small MLPs as the IDR presets
    (`_fast`), exponential learning-rate decay to 0.1 (instant-ngp, NeuS2) after a short warm-up,
    Neuralangelo's curvature loss, and samples over each ray's whole span in the bounding sphere.

    With the occupancy grid and no curvature loss (the recipe before 2026-12-05) a Spot run of 120 s alone on
    an H100 grew surface deep inside the object (18% of its mesh farther than 0.5% of the diagonal from the
    GT, 98% of that inside it): Chamfer 0.568%; without the grid 0.313%, without it and with the curvature
    loss 0.165% (0.151% without masks). On the two synthesised scenes (four runs sharing the GPU) the new
    recipe was 12-15% behind the old one (0.297 / 0.255% against 0.265 / 0.222%), a far smaller cost than
    Spot's gain (benchmarks/RESULTS.md, section 1)."""
    sdf = SDFFieldConfig(
        encoding=encoding, hidden_dim=64, num_layers=2, skip_layers=(), feature_dim=32, gradient=gradient
    )
    appearance = AppearanceFieldConfig(
        view_encoding=PositionalEncodingConfig(num_frequencies=4), hidden_dim=64, num_layers=2
    )
    # No occupancy grid (`--model.renderer.occupancy.enabled` turns it on): the graphed step draws a
    # fixed number of samples a ray either way, so the grid bought no speed (119 against 112 it/s on Spot,
    # one H100), and without it the surface grown inside the object halved (17.8% -> 8.4% of the mesh).
    # Why is not established: the grid's span of a ray still covers the inside of the object, only the
    # empty space in front of and behind it goes unsampled.
    renderer = VolumeRendererConfig(
        background="constant", occupancy=OccupancyGridConfig(enabled=False, resolution=64)
    )
    optim = OptimConfig(
        lr=1e-3, encoding_lr=encoding_lr, schedule="exponential", final_factor=0.1, warmup=0.02
    )
    config = _neus(sdf, appearance, optim, FAST_STEPS, 1024, renderer)
    config.model.loss.curvature_weight, config.model.loss.curvature_warmup = NEUS_CURVATURE
    # The whole step as one CUDA graph on GPUs: 6.97 against 17.78 ms a step for `neus-hashgrid-fused` at
    # 1024 rays on an H200 (benchmarks/RESULTS.md, "Step time and GPU use").
    config.cuda_graph_step = True
    return _paced(config)


NEUS_GRID_SURFACE_COLOUR = 0.2
"""`model.loss.surface_colour_until` of the NeuS hash-grid presets: for the first 20% of the run the colour loss
inside the masks compares the surface's colour (foreground over opacity), then the rendered one. On an H100 at
120 s (two runs a GPU, seeds 0-1) `neus-hashgrid-fused` ended better in all four pairs: Spot 0.185 / 0.215%
Chamfer against 0.205 / 0.219%, the fuze bottle 0.203 / 0.169% against 0.213 / 0.211%, with the same in-mask
PSNR (32.98 against 32.80 dB, 29.40 against 29.36 dB). The filter banks keep the rendered colour: on Spot they
gained (0.272 against 0.355%) but on the fuze bottle lost (0.630 against 0.508%; one run's surface vanished for
184 steps). On the CPU the grid's opacity also sank on the fuze bottle's first steps with it (to 0.1), where
`loss.masked_background: random` held it (0.34-0.68); with `uniform` (the random background's expectation)
instead, the grid ended 7% behind this preset on Spot and the fuze bottle (0.206 against 0.192%, 0.204 against
0.190%, H100, 120 s, seed 0; experiments/neus_masked_background.yaml).
benchmarks/RESULTS.md section 4, experiments/neus_surface_colour.yaml."""


def _neus_grid(backend: str, gradient: str) -> TrainConfig:
    """The NeuS hash-grid presets: the grid recipe with the surface's colour for the first part of the run."""
    config = _neus_fast(_points_grid(backend), gradient=gradient)
    config.model.loss.surface_colour_until = NEUS_GRID_SURFACE_COLOUR
    return config


def neus_hashgrid() -> TrainConfig:
    """NeuS with the hash grid for points (PyTorch grid, analytic eikonal)."""
    return _neus_grid("torch", gradient="analytic")


def neus_hashgrid_fused() -> TrainConfig:
    """NeuS with the hash grid on the fastest backend (fused Triton kernel on CUDA), finite differences."""
    return _neus_grid("auto", gradient="finite_difference")


def _compiled_bank(config_cls: Callable[..., NFFBConfig]) -> NFFBConfig:
    """The NeuS presets' fused bank with its training chain compiled by Inductor (`compile_training`). A NeuS
    step evaluates the bank with gradient at every sample and is memory-bound (70% of an H100's bandwidth for
    `neus-nffb-fused`); compiled, the graphed step at 1024 rays took 24.96 against 31.30 ms (plain) and 46.61
    against 77.75 ms (style) on an H100, and on Spot at 120 s (two runs a GPU, seed 0) the plain bank reached
    0.355% against 0.402% eager (benchmarks/RESULTS.md, 2026-12-06 fourth session). The first compile takes
    4-20 s of the run's budget (not of its schedules: nsr.engine.schedule). The IDR presets keep the eager
    chain: their steps gained 5-10%, less than a compile costs a short run."""
    encoding = _filter_bank(config_cls, "auto")
    encoding.compile_training = True
    return encoding


NEUS_BANK_MASKED_BACKGROUND = "uniform"
"""`model.loss.masked_background` of the NeuS plain filter-bank presets: inside the masks the colour loss is its
expectation over a uniformly random background colour, so no transparency there pays off whatever the object's
colour. On an H100 at 120 s (two runs a GPU, seed 0, 2026-12-06) `neus-nffb-fused` ended at 0.271% Chamfer
against 0.343% with the scene's background on Spot and 0.333% against 0.566% on the fuze bottle, with 0.1-0.7 dB
more in-mask PSNR; the hash grid, with the surface's colour for its first 20%, was 7% behind with it on both (0.206
against 0.192%, 0.204 against 0.190%) and keeps the scene's. The style bank is unmeasured with it and keeps the
scene's (benchmarks/RESULTS.md section 4, experiments/neus_masked_background.yaml)."""


NEUS_BANK_UNLOCK_EVERY = FILTER_BANK_IDR_UNLOCK_EVERY
"""Fraction of the run between two level unlocks of the NeuS plain filter-bank presets (all 8 levels by 60% of the
run, as the IDR banks'; `_filter_bank`'s 500 / 15000 unlocked them by 20%). On an H100 at 120 s (two runs a GPU,
seeds 0-1, 2026-12-06 ninth session) `neus-nffb-fused` ended better on the mean of all three scenes, in four seed
pairs of six: Spot 0.232% Chamfer (0.218-0.245) against 0.262% (0.256-0.267), the fuze bottle 0.310% (0.289-0.330)
against 0.358% (0.305-0.411), the armadillo 0.330% (0.281-0.379) against 0.365% (0.338-0.391); with fewer levels
for longer it also ran 3-12% more steps. Its eikonal loss did not drift as the IDR bank's had (it falls after the
second or third tenth of the run either way). The style bank is unmeasured with it and keeps `_filter_bank`'s
(benchmarks/RESULTS.md section 4, experiments/banks_neus_unlock.yaml)."""


def _neus_bank(
    encoding: NFFBConfig, gradient: str = "analytic", masked_background: str = "scene"
) -> TrainConfig:
    """The NeuS filter-bank presets: the grid recipe (`_neus_fast`) with the banks' table learning rate. The
    colour network starts mid-grey (`colour_init: grey`), though in their first 10-20 steps the banks lose most
    of their opacity (to 0.000-0.004 of the masked rays, 128 rays on a CPU) and recover: started at the
    images' mean colour (`mean`) they never dip, but their 120 s surfaces were worse in five pairs of six (H100,
    Spot seeds 0-1 and the fuze bottle seed 0: 0.377 against 0.314% Chamfer for the plain bank on Spot, 0.862
    against 0.743% for the style bank; benchmarks/RESULTS.md section 4)."""
    config = _neus_fast(encoding, gradient=gradient, encoding_lr=FILTER_BANK_TABLE_LR)
    config.model.loss.masked_background = masked_background
    return config


def _neus_plain_bank(encoding: NFFBConfig, gradient: str) -> TrainConfig:
    """The NeuS plain filter-bank presets: `_neus_bank` with the uniform masked background
    (`NEUS_BANK_MASKED_BACKGROUND`) and levels unlocked over 60% of the run (`NEUS_BANK_UNLOCK_EVERY`)."""
    encoding.unlock_every = NEUS_BANK_UNLOCK_EVERY
    return _neus_bank(encoding, gradient=gradient, masked_background=NEUS_BANK_MASKED_BACKGROUND)


def neus_nffb() -> TrainConfig:
    """NeuS with the Neural Fourier Filter Bank for points (PyTorch grid, analytic eikonal)."""
    return _neus_plain_bank(_filter_bank(NFFBConfig, "torch"), gradient="analytic")


def neus_nffb_fused() -> TrainConfig:
    """NeuS with the filter bank on the fastest hash-grid backend, finite-difference eikonal, the training
    chain compiled."""
    return _neus_plain_bank(_compiled_bank(NFFBConfig), gradient="finite_difference")


def neus_stylemod_nffb_fused() -> TrainConfig:
    """NeuS with the style-modulated filter bank on the fastest hash-grid backend, finite differences, the
    training chain compiled."""
    return _neus_bank(_compiled_bank(_modulated_style_bank), gradient="finite_difference")


def neus_stylemod_nffb() -> TrainConfig:
    """NeuS with the style-modulated filter bank for points (PyTorch grid, analytic eikonal)."""
    return _neus_bank(_filter_bank(_modulated_style_bank, "torch"))


_MLP = {"camera_lr_factor": 6.0, "fill_pockets": False, "camera_steps_factor": 1.0}
"""The MLP presets' -cams settings: cameras at 6x the model's learning rate, no pocket fill, the preset's steps
(IDR's and the published NeuS's long runs; `demo` takes `CAMERA_STEPS_FACTOR`, see `with_trained_cameras`)."""
_NEUS = {"camera_steps_factor": 1.0}
"""The NeuS grid and filter-bank presets' -cams: the preset's steps (their trained cameras are unmeasured)."""

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("positional", "IDR as published: positional encoding, 8x512 MLP (GPU)", positional, **_MLP),
        Preset(
            "demo",
            "small positional-encoding IDR for the generated scene on a CPU",
            demo,
            **{**_MLP, "camera_steps_factor": CAMERA_STEPS_FACTOR},
        ),
        Preset("fourier", "random Fourier features for points and views, 8x256 MLP", fourier, **_MLP),
        Preset("hashgrid", "hash grid for points and views, 2x64 MLPs (PyTorch grid)", hashgrid),
        Preset("hashgrid-pe", "hash grid for points, positional views (PyTorch grid)", hashgrid_pe),
        Preset(
            "hashgrid-fused", "hash grid on the fused GPU kernel, finite-difference eikonal", hashgrid_fused
        ),
        Preset("nffb", "Neural Fourier Filter Bank for points, positional views (PyTorch grid)", nffb),
        Preset(
            "stylemod-nffb",
            "style-modulated filter bank for points, positional views (PyTorch grid)",
            stylemod_nffb,
        ),
        Preset(
            "stylemod-nffb-fused",
            "style-modulated filter bank on the fused GPU kernel, finite-difference eikonal",
            stylemod_nffb_fused,
        ),
        Preset("nffb-fused", "filter bank on the fused GPU kernel, finite-difference eikonal", nffb_fused),
        Preset(
            "neus-positional",
            "NeuS as published: positional encoding, 8x256 MLP (GPU)",
            neus_positional,
            **_MLP,
        ),
        Preset(
            "neus-demo", "small positional-encoding NeuS for the generated scene on a CPU", neus_demo, **_MLP
        ),
        Preset("neus-hashgrid", "NeuS, hash grid for points (PyTorch grid)", neus_hashgrid, **_NEUS),
        Preset(
            "neus-hashgrid-fused",
            "NeuS, hash grid on the fused GPU kernel, finite differences",
            neus_hashgrid_fused,
            **_NEUS,
        ),
        Preset("neus-nffb", "NeuS, Neural Fourier Filter Bank for points (PyTorch grid)", neus_nffb, **_NEUS),
        Preset(
            "neus-nffb-fused",
            "NeuS, filter bank on the fused GPU kernel, finite differences",
            neus_nffb_fused,
            **_NEUS,
        ),
        Preset(
            "neus-stylemod-nffb-fused",
            "NeuS, style-modulated filter bank on the fused GPU kernel, finite differences",
            neus_stylemod_nffb_fused,
            **_NEUS,
        ),
        Preset(
            "neus-stylemod-nffb",
            "NeuS, style-modulated filter bank for points (PyTorch grid)",
            neus_stylemod_nffb,
            **_NEUS,
        ),
    ]
}


CAMERA_SUFFIX = "-cams"
"""Every preset NAME has a variant NAME-cams that also optimises the cameras (see `with_trained_cameras`)."""


CAMERA_FREEZE_MAX_STEPS = 1000
"""The `-cams` cameras stay frozen for 15% of the preset's steps but never longer than this. On Spot (one
H100, 2026-11-27, hashgrid-fused-cams, 3 deg / 3% noise) a 1050-step freeze in a 7000-step run recovered
the poses to 0.15 deg / 0.26%, while the 15000-step preset's 2250-step freeze let the hash grid's fine
levels fit the noisy poses first: the centres drifted to 4.5% before recovering to 0.29 deg / 0.51%. With
the cap the 15000-step preset ends at 0.065-0.080 deg / 0.095-0.124% (two noise seeds,
benchmarks/history/2026-11.md). The freeze is kept as that fraction of the run at any length."""


def set_camera_schedule(config: TrainConfig) -> TrainConfig:
    """The `-cams` schedules, in fractions of the run: the cameras frozen for the first 15% of the preset's
    steps (at most `CAMERA_FREEZE_MAX_STEPS` of them), then x0.3 at 50% and 75%; where the pocket fill
    is on, its refreshes (`set_pocket_schedule`); and the camera guard's checks (`set_camera_guard`)."""
    config.cameras.warmup = "frozen"
    config.cameras.warmup_until = min(0.15, CAMERA_FREEZE_MAX_STEPS / config.steps)
    config.cameras.lr_milestones = (0.5, 0.75)
    config.cameras.lr_factor = 0.3
    if config.pockets.every > 0:
        set_pocket_schedule(config)
    return set_camera_guard(config)


def set_camera_guard(config: TrainConfig) -> TrainConfig:
    """Watch the cameras from where they start to move to where their learning rate is cut the second
    time, every 5% of the run, and re-localise those left far behind (nsr.engine.camera_guard)."""
    config.camera_guard.start = config.cameras.warmup_until
    config.camera_guard.every = 0.05
    config.camera_guard.stop = 0.75
    return config


def set_pocket_schedule(config: TrainConfig) -> TrainConfig:
    """Fill hidden pockets from 20% of the run on, refreshed every 2/15 of it (3000, 5000, ..., 13000 of
    15000 steps; see nsr.engine.pockets)."""
    config.pockets.start = 0.2
    config.pockets.every = 2 / 15
    return config


def with_trained_cameras(preset: Preset) -> Preset:
    """The preset with `cameras.trainable` on.

    The cameras stay frozen (no gradient) for the first 15% of the steps (at most 1000) while the surface
    forms from the initial sphere (cameras fitted to a blob drift), then learn at `camera_lr_factor` times
    the model's learning rate, cut to 0.3x at half and again at three quarters of the run so the poses
    settle before the surface's last refinement. Start poses come from `--cameras.init-file FILE` or
    `--pose-noise ROT_DEG,TRANS_FRAC[,SEED]`.

    The grid and filter-bank presets (`fill_pockets`) also fill hidden pockets of the SDF from 20% of the
    steps on (`pockets.*`, nsr.engine.pockets): without that, pockets carved while the poses are wrong
    stay, and on Spot the Chamfer bar (1.25x the fixed-camera run) was met on 2 of 5 noise seeds; with it
    on 9 of 10 (hashgrid-fused, one H100, 2026-11-27, benchmarks/history/2026-11.md). The MLP presets (`demo`,
    `positional`, `fourier`) do not: an MLP has no local parameters, and on the CPU demo scene, where the
    fill finds only 0-10 pocket points, its loss (a mean over a batch of them) moved the whole SDF: the
    fixed-camera run ended at 0.921% Chamfer instead of 0.229%.

    They train `camera_steps_factor` times the preset's steps (`CAMERA_STEPS_FACTOR`, 1.5: the cameras are
    still converging when the preset's steps end) with the same schedules in fractions of the run, the
    cameras' freeze at most `CAMERA_FREEZE_MAX_STEPS` steps as before; `positional`, `fourier` and the NeuS
    presets keep their steps.

    The learning-rate factor: 6 for `demo`, `positional` and `fourier` (the demo's 3e-3 was tuned on the CPU demo scene),
    1 for the grid and filter-bank presets (model lr 1e-3): on Spot and DTU (one H100, 2026-11-27) 6x made
    the poses diverge (3 deg -> 21 deg), 1x recovered them best (benchmarks/history/2026-11.md).
    """

    def make() -> TrainConfig:
        config = preset.make()
        config.cameras.trainable = True
        config.cameras.lr = preset.camera_lr_factor * config.optim.lr
        config.steps = round(preset.camera_steps_factor * config.steps)
        if preset.fill_pockets:
            set_pocket_schedule(config)
        return set_camera_schedule(config)

    return Preset(preset.name + CAMERA_SUFFIX, preset.description + "; trains the cameras too", make)


PRESETS.update({p.name + CAMERA_SUFFIX: with_trained_cameras(p) for p in list(PRESETS.values())})


def get_preset(name: str) -> TrainConfig:
    """A fresh TrainConfig of the named preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name].make()
