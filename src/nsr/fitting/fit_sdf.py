"""Fit an SDF field directly to a mesh's signed distance (the filter-bank paper's SDF experiment).

This is the encoding benchmark without rendering: every encoding gets the same supervision, the
same budget and the same evaluation, so differences come from the encoding (and its network).

Pipeline (`fit_mesh_sdf` runs it all; the pieces are public for tests and scripts):

1. `load_mesh`: any triangle mesh trimesh reads (OBJ, PLY, STL, OFF, GLB ...), as stored.
2. `Normalization`: the mesh is centred on its bounding-box centre and scaled so its farthest
   vertex lies at `normalize_radius` (0.9) from the origin: inside the unit sphere, with a margin
   in the [-1, 1]^3 cube where points are sampled and marching cubes runs. The field lives in these
   normalised units; every reported distance is converted back to the mesh's own units.
3. `prepare_samples`: a fixed pool of training points with ground-truth signed distances
   (`nsr.mesh.distance`, sign by generalised winding number, so scans with holes work):
   points on the surface (distance 0), surface points jittered by Gaussian noise of each
   `near_sigmas` (near-surface band), and points uniform in the cube; plus uniform points in the
   mesh's bounding box with their ground-truth occupancy for the IoU. The pool can be cached in a
   folder (`cached_samples`): the key hashes the mesh file and the sampling config, so a cache
   computed on a CPU with libigl serves a GPU machine that lacks it.
4. `fit_field`: Adam on random batches from the pool. Loss `l1` (DeepSDF: L1 between the
   prediction and the truth, both clamped to +-`clamp`) or `relative` (NFFB: squared error over
   truth^2 + 1e-4, truth clamped), plus an optional eikonal term; learning rate decays
   exponentially to `lr_final_factor` x lr over the budget (steps or seconds, whichever binds).
5. `evaluate_field`: marching cubes of the fitted field, mapped back to mesh units, against the
   mesh (`nsr.metrics.mesh_metrics`: sampled symmetric Chamfer, also relative to the mesh's
   bounding-box diagonal, F-score, normal consistency), and the IoU of the field's inside
   (SDF < 0) with the ground-truth occupancy on the uniform bounding-box points.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import trimesh
import yaml

from nsr.atomic import atomic_write
from nsr.data.meshes import read_mesh
from nsr.encodings import ENCODING_CONFIGS
from nsr.engine.trainer import resolve_device
from nsr.fields.sdf import SDFField, SDFFieldConfig
from nsr.mesh.distance import DistanceBackend, resolve_backend, signed_distance
from nsr.mesh.extract import MeshError, extract_mesh, transform_mesh
from nsr.metrics.geometry import mesh_metrics, sample_surface

ProgressFn = Callable[[int, int], None]
"""Called as progress(done, total)."""

CACHE_VERSION = 1
"""Bumped whenever the sample pool's content or layout changes (invalidates old cache files)."""

DIRECTION_ONLY = frozenset({"sh"})
"""Encodings of view directions, not of points: they cannot represent an SDF."""


class FitSDFError(RuntimeError):
    """fit-sdf cannot run: unreadable or empty mesh, unknown encoding, bad option, diverged fit."""


# ---------------------------------------------------------------------------------------------
# Mesh and normalisation


def load_mesh(path: str | Path) -> trimesh.Trimesh:
    """Read a triangle mesh as stored (no vertex merging); DataError (`nsr.data.meshes.read_mesh`) for a
    file that is not one: missing, unreadable, no triangles, zero area, non-finite."""
    return read_mesh(path, "triangle mesh", materials=False)


@dataclass
class Normalization:
    """normalised = (mesh_units - centre) / scale; the mesh then fits in the sphere of `radius`."""

    centre: np.ndarray
    """(3,) bounding-box centre of the mesh, mesh units."""
    scale: float
    """Mesh units per normalised unit."""

    @classmethod
    def of(cls, mesh: trimesh.Trimesh, radius: float) -> Normalization:
        vertices = np.asarray(mesh.vertices, dtype=np.float64)[np.unique(np.asarray(mesh.faces))]
        centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
        farthest = float(np.linalg.norm(vertices - centre, axis=1).max())
        return cls(centre=centre, scale=farthest / radius)

    def to_unit(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) mesh units -> normalised units."""
        return (np.asarray(points, dtype=np.float64) - self.centre) / self.scale

    def to_mesh_matrix(self) -> np.ndarray:
        """(4, 4) affine map from normalised units to mesh units (for `transform_mesh`)."""
        matrix = np.eye(4)
        matrix[:3, :3] *= self.scale
        matrix[:3, 3] = self.centre
        return matrix


# ---------------------------------------------------------------------------------------------
# Ground-truth samples


@dataclass
class SDFSamplesConfig:
    """The pool of supervised points and the IoU points (all counts are per mesh)."""

    num_surface: int = 250_000
    """Points on the surface (ground truth 0), uniform by area."""
    num_near: int = 500_000
    """Surface points jittered by Gaussian noise, split evenly over `near_sigmas`."""
    near_sigmas: tuple[float, ...] = (0.01, 0.002)
    """Standard deviations of the jitter, normalised units (the mesh fits the sphere of 0.9)."""
    num_uniform: int = 250_000
    """Points uniform in the cube [-1, 1]^3 (normalised units)."""
    num_iou: int = 100_000
    """Points uniform in the mesh's bounding box, with ground-truth occupancy, for the IoU."""
    normalize_radius: float = 0.9
    """The farthest mesh vertex from the bounding-box centre lands at this normalised radius."""
    seed: int = 0
    """Seed of every random draw of the pool (same seed, same pool, on any machine)."""


@dataclass
class SDFSamples:
    """A mesh's training pool and IoU points, in normalised units (see `Normalization`)."""

    points: np.ndarray
    """(N, 3) float32 training points."""
    sdf: np.ndarray
    """(N,) float32 ground-truth signed distance at `points`, normalised units, negative inside."""
    iou_points: np.ndarray
    """(M, 3) float32 points uniform in the mesh's bounding box."""
    iou_inside: np.ndarray
    """(M,) bool ground-truth occupancy at `iou_points` (winding number > 1/2)."""
    normalization: Normalization
    """How the mesh was normalised."""
    seconds: float = 0.0
    """Time spent computing the ground truth (0 when read from a cache)."""
    backend: str = "cache"
    """Distance backend that computed it (`torch`, `libigl`), or `cache`."""

    def save(self, path: str | Path) -> Path:
        """Write an .npz atomically."""

        def write(file) -> None:
            buffer = io.BytesIO()
            np.savez(
                buffer,
                version=np.int64(CACHE_VERSION),
                points=self.points,
                sdf=self.sdf,
                iou_points=self.iou_points,
                iou_inside=self.iou_inside,
                centre=self.normalization.centre,
                scale=np.float64(self.normalization.scale),
            )
            file.write(buffer.getvalue())

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> SDFSamples:
        """Read a file written by `save`; FitSDFError if it is not one."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["version"]) != CACHE_VERSION:
                    raise FitSDFError(
                        f"{path}: cache version {int(data['version'])}, expected {CACHE_VERSION}"
                    )
                return cls(
                    points=data["points"],
                    sdf=data["sdf"],
                    iou_points=data["iou_points"],
                    iou_inside=data["iou_inside"],
                    normalization=Normalization(centre=data["centre"], scale=float(data["scale"])),
                )
        except FitSDFError:
            raise
        except Exception as error:
            raise FitSDFError(f"{path}: unreadable sample cache ({error}); delete it to recompute") from error


def prepare_samples(
    mesh: trimesh.Trimesh,
    config: SDFSamplesConfig,
    backend: DistanceBackend = "auto",
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
) -> SDFSamples:
    """Draw the pool and compute its ground truth (see the module docstring)."""
    _check_samples_config(config)
    start = time.perf_counter()
    try:
        which = resolve_backend(backend)
    except (ImportError, ValueError) as error:
        raise FitSDFError(str(error)) from error
    norm = Normalization.of(mesh, config.normalize_radius)
    vertices = norm.to_unit(mesh.vertices)
    unit_mesh = trimesh.Trimesh(vertices=vertices, faces=np.asarray(mesh.faces), process=False)
    streams = np.random.SeedSequence(config.seed).spawn(4)

    surface = sample_surface(unit_mesh, config.num_surface, streams[0])[0] if config.num_surface else None
    rng = np.random.default_rng(streams[1])
    near_parts = []
    if config.num_near:
        base = sample_surface(unit_mesh, config.num_near, streams[2])[0]
        sigmas = np.repeat(np.asarray(config.near_sigmas), -(-config.num_near // len(config.near_sigmas)))
        near_parts.append(base + rng.normal(size=base.shape) * sigmas[: len(base), None])
    uniform = rng.uniform(-1.0, 1.0, size=(config.num_uniform, 3))
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    iou_points = np.random.default_rng(streams[3]).uniform(low, high, size=(config.num_iou, 3))

    queries = np.concatenate([*near_parts, uniform, iou_points])
    truth = signed_distance(queries, vertices, unit_mesh.faces, which, device, progress=progress)
    num_train = len(queries) - config.num_iou
    points = [queries[:num_train]]
    sdf = [truth.distance[:num_train]]
    if surface is not None:
        points.insert(0, surface)
        sdf.insert(0, np.zeros(len(surface)))
    return SDFSamples(
        points=np.concatenate(points).astype(np.float32),
        sdf=np.concatenate(sdf).astype(np.float32),
        iou_points=iou_points.astype(np.float32),
        iou_inside=truth.inside[num_train:],
        normalization=norm,
        seconds=time.perf_counter() - start,
        backend=which,
    )


def cache_path(mesh_path: str | Path, config: SDFSamplesConfig, cache_dir: str | Path) -> Path:
    """Cache file for a mesh file and sampling config: `<stem>-<hash>.npz` in `cache_dir`.

    The hash covers the mesh file's bytes, the sampling config and CACHE_VERSION, not the distance
    backend: a pool computed with libigl on one machine is valid on another.
    """
    digest = hashlib.sha256(Path(mesh_path).read_bytes())
    digest.update(json.dumps(dataclasses.asdict(config), sort_keys=True).encode())
    digest.update(str(CACHE_VERSION).encode())
    return Path(cache_dir) / f"{Path(mesh_path).stem}-{digest.hexdigest()[:16]}.npz"


def cached_samples(
    mesh_path: str | Path,
    mesh: trimesh.Trimesh,
    config: SDFSamplesConfig,
    cache_dir: str | Path | None,
    backend: DistanceBackend = "auto",
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
) -> SDFSamples:
    """The pool from `cache_dir` when cached there, else computed (and written there if given)."""
    if cache_dir is None:
        return prepare_samples(mesh, config, backend, device, progress)
    path = cache_path(mesh_path, config, cache_dir)
    if path.is_file():
        return SDFSamples.load(path)
    samples = prepare_samples(mesh, config, backend, device, progress)
    samples.save(path)
    return samples


def _check_samples_config(config: SDFSamplesConfig) -> None:
    counts = {"num_surface": config.num_surface, "num_near": config.num_near}
    counts |= {"num_uniform": config.num_uniform, "num_iou": config.num_iou}
    for name, value in counts.items():
        if value < 0:
            raise FitSDFError(f"samples.{name} must be >= 0, got {value}")
    if config.num_surface + config.num_near + config.num_uniform == 0:
        raise FitSDFError("the training pool is empty: set samples.num_surface, num_near or num_uniform > 0")
    if config.num_iou == 0:
        raise FitSDFError("samples.num_iou must be positive (the IoU needs points)")
    if config.num_near and (not config.near_sigmas or min(config.near_sigmas) <= 0):
        raise FitSDFError(f"samples.near_sigmas must be positive, got {config.near_sigmas}")
    if not 0 < config.normalize_radius <= 1:
        raise FitSDFError(f"samples.normalize_radius must be in (0, 1], got {config.normalize_radius}")


# ---------------------------------------------------------------------------------------------
# Encodings and networks


@dataclass(frozen=True)
class NetworkDefaults:
    """The SDF network and learning rate an encoding gets unless the user overrides them."""

    hidden_dim: int
    num_layers: int
    skip_layers: tuple[int, ...]
    lr: float


NETWORK_DEFAULTS = {
    "positional": NetworkDefaults(hidden_dim=256, num_layers=8, skip_layers=(4,), lr=5e-4),
    "fourier": NetworkDefaults(hidden_dim=256, num_layers=8, skip_layers=(4,), lr=5e-4),
    "nffb": NetworkDefaults(hidden_dim=64, num_layers=2, skip_layers=(), lr=1e-3),
    "stylemod-nffb": NetworkDefaults(hidden_dim=64, num_layers=2, skip_layers=(), lr=1e-3),
}
"""Frequency encodings feed IDR's 8 x 256 MLP (the baseline); the filter banks (whose SIREN trunk
diverges at grid learning rates: bunny, 60 steps, 1e-3 -> 0.19% Chamfer, 3e-3 -> 0.66%, 1e-2 -> 1.7%)
a small MLP at 1e-3; others (grids) GRID_NETWORK."""

GRID_NETWORK = NetworkDefaults(hidden_dim=64, num_layers=2, skip_layers=(), lr=1e-2)
"""Grid and filter-bank encodings carry the detail in their tables: a small MLP reads them."""


def point_encodings() -> list[str]:
    """Command-line names of the encodings that can encode 3D points."""
    return [name for name in ENCODING_CONFIGS if name not in DIRECTION_ONLY]


def encoding_config(name: str, overrides: dict[str, Any] | None = None) -> Any:
    """The config of encoding `name` with field overrides; FitSDFError for unknown names/fields."""
    if name in DIRECTION_ONLY:
        raise FitSDFError(
            f"encoding {name!r} encodes view directions, not points; choose one of {', '.join(point_encodings())}"
        )
    if name not in ENCODING_CONFIGS:
        raise FitSDFError(f"unknown encoding {name!r}; choose one of {', '.join(point_encodings())}")
    config = ENCODING_CONFIGS[name]()
    known = {f.name: f for f in dataclasses.fields(config) if f.name != "kind"}
    for key, value in (overrides or {}).items():
        attr = key.replace("-", "_")
        if attr not in known:
            raise FitSDFError(
                f"encoding {name!r} has no option {key!r}; it has {', '.join(sorted(known)) or 'none'}"
            )
        current = getattr(config, attr)
        if isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        elif isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        setattr(config, attr, value)
    return config


def parse_overrides(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """['key=value', ...] -> {key: value}, values parsed as YAML scalars/lists (8, 1e-2, true, [1, 2])."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise FitSDFError(f"encoding option {item!r} is not KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise FitSDFError(f"encoding option {item!r}: cannot parse the value ({error})") from error
    return out


# ---------------------------------------------------------------------------------------------
# Fitting


@dataclass
class FitSDFConfig:
    """Everything that defines one fit besides the mesh and its sample pool."""

    encoding: Any = None
    """Encoding config (a member of `nsr.encodings.EncodingConfig`); None = positional defaults."""
    encoding_name: str = "positional"
    """Command-line name of the encoding (selects the default network)."""
    hidden_dim: int | None = None
    """SDF MLP width (None: the encoding's default, see NETWORK_DEFAULTS / GRID_NETWORK)."""
    num_layers: int | None = None
    """SDF MLP hidden layers (None: the encoding's default)."""
    skip_layers: tuple[int, ...] | None = None
    """Skip-connection layers (None: the encoding's default; dropped if beyond num_layers)."""
    lr: float | None = None
    """Adam learning rate (None: the encoding's default)."""
    lr_final_factor: float = 0.1
    """The learning rate decays exponentially to this fraction of `lr` at the end of the budget."""
    steps: int = 5000
    """Optimisation steps (the fit stops earlier if `max_seconds` runs out)."""
    max_seconds: float = 0.0
    """Training wall-clock budget in seconds (0 = none)."""
    batch_size: int = 16384
    """Points per step, drawn uniformly from the pool."""
    loss: Literal["l1", "relative"] = "l1"
    """`l1` on clamped values (DeepSDF) or `relative` squared error (NFFB)."""
    clamp: float = 0.1
    """Truth (and, for `l1`, prediction) clamped to +-clamp, normalised units."""
    eikonal_weight: float = 0.0
    """Weight of the eikonal term (|grad sdf| - 1)^2 on the batch (0 = off; costs a double backward)."""
    gradient: Literal["auto", "analytic", "finite_difference"] = "auto"
    """Spatial gradient for the eikonal term (SDFFieldConfig.gradient); `auto`: analytic when the
    eikonal term is on, else finite differences (never evaluated, and it keeps first-order-only
    fast paths such as the fused hash grid available)."""
    seed: int = 0
    """Seeds the network's initialisation and the batches."""
    device: str = "auto"
    """`auto` (CUDA if available), `cpu`, `cuda`, `cuda:1` ..."""

    def resolved_gradient(self) -> Literal["analytic", "finite_difference"]:
        """The SDF field's gradient mode (`auto` resolved, see `gradient`)."""
        if self.gradient != "auto":
            return self.gradient
        return "analytic" if self.eikonal_weight > 0 else "finite_difference"

    def network(self) -> NetworkDefaults:
        """The network and learning rate actually used (defaults filled in)."""
        base = NETWORK_DEFAULTS.get(self.encoding_name, GRID_NETWORK)
        layers = self.num_layers if self.num_layers is not None else base.num_layers
        skips = self.skip_layers if self.skip_layers is not None else base.skip_layers
        return NetworkDefaults(
            hidden_dim=self.hidden_dim if self.hidden_dim is not None else base.hidden_dim,
            num_layers=layers,
            skip_layers=tuple(s for s in skips if 0 < s < layers),
            lr=self.lr if self.lr is not None else base.lr,
        )


@dataclass
class FitStep:
    """What one step reports to a progress bar."""

    step: int
    loss: float
    lr: float
    seconds: float


@dataclass
class FitOutcome:
    """The fitted field and how the fit went."""

    field: SDFField
    steps: int
    """Steps actually taken."""
    seconds: float
    """Training wall-clock time (sampling batches, forward, backward, update), synchronised."""
    final_loss: float
    """Mean loss over the last (up to) 50 steps."""


def resolve_fit_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; FitSDFError for an unusable device."""
    try:
        device = resolve_device(name)
    except RuntimeError as error:
        raise FitSDFError(f"unknown device {name!r} ({error})") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FitSDFError(f"device {name!r} asked for but CUDA is not available; use --device cpu")
    return device


def build_field(config: FitSDFConfig) -> SDFField:
    """The SDF field of `config` (no feature vector: geometry only), on the CPU."""
    net = config.network()
    encoding = config.encoding if config.encoding is not None else encoding_config(config.encoding_name)
    field_config = SDFFieldConfig(
        encoding=encoding,
        hidden_dim=net.hidden_dim,
        num_layers=net.num_layers,
        skip_layers=net.skip_layers,
        feature_dim=0,
        gradient=config.resolved_gradient(),
    )
    try:
        return field_config.build()
    except (ValueError, TypeError) as error:
        raise FitSDFError(
            f"cannot build the SDF field for encoding {config.encoding_name!r}: {error}"
        ) from error


def sdf_loss(pred: torch.Tensor, truth: torch.Tensor, kind: str, clamp: float) -> torch.Tensor:
    """Mean data loss over the batch; (B,) predictions and truths in normalised units."""
    target = truth.clamp(-clamp, clamp)
    if kind == "l1":
        return (pred.clamp(-clamp, clamp) - target).abs().mean()
    if kind == "relative":
        return ((pred - target) ** 2 / (target**2 + 1e-4)).mean()
    raise FitSDFError(f"unknown loss {kind!r}; use l1 or relative")


def fit_field(
    samples: SDFSamples, config: FitSDFConfig, on_step: Callable[[FitStep], None] | None = None
) -> FitOutcome:
    """Train a fresh SDF field on the sample pool (module docstring, step 4)."""
    if config.steps < 1 or config.batch_size < 1:
        raise FitSDFError(f"steps ({config.steps}) and batch size ({config.batch_size}) must be positive")
    if config.max_seconds < 0 or config.eikonal_weight < 0 or not config.clamp > 0:
        raise FitSDFError("max_seconds and eikonal_weight must be >= 0 and clamp > 0")
    device = resolve_fit_device(config.device)
    torch.manual_seed(config.seed)
    model = build_field(config).to(device)
    net = config.network()
    optimizer = torch.optim.Adam(model.parameters(), lr=net.lr, betas=(0.9, 0.99), eps=1e-15)
    points = torch.from_numpy(np.ascontiguousarray(samples.points)).to(device)
    truth = torch.from_numpy(np.ascontiguousarray(samples.sdf)).to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)

    recent: list[torch.Tensor] = []
    _sync(device)
    start = time.perf_counter()
    elapsed = 0.0
    step = 0
    while step < config.steps:
        progress = step / config.steps
        if config.max_seconds > 0:
            progress = max(progress, elapsed / config.max_seconds)
        lr = net.lr * config.lr_final_factor ** min(progress, 1.0)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.encoding.set_progress(progress)

        index = torch.randint(len(points), (config.batch_size,), device=device, generator=generator)
        x, y = points[index], truth[index]
        if config.eikonal_weight > 0:
            out = model.with_gradient(x, create_graph=True)
            loss = sdf_loss(out.sdf, y, config.loss, config.clamp)
            loss = loss + config.eikonal_weight * ((out.gradient.norm(dim=-1) - 1) ** 2).mean()
        else:
            loss = sdf_loss(model.sdf(x), y, config.loss, config.clamp)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        recent = [*recent[-49:], loss.detach()]

        report = on_step is not None and (step % 10 == 0 or step == 1 or step == config.steps)
        if report or step % 50 == 0:
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FitSDFError(f"the loss became {value} at step {step}; lower the learning rate (--lr)")
            if report:
                on_step(FitStep(step=step, loss=value, lr=lr, seconds=time.perf_counter() - start))
        elapsed = time.perf_counter() - start
        if config.max_seconds > 0 and elapsed >= config.max_seconds:
            break
    _sync(device)
    seconds = time.perf_counter() - start
    final = float(torch.stack(recent).mean())
    if not math.isfinite(final):
        raise FitSDFError(f"the loss became {final}; lower the learning rate (--lr)")
    return FitOutcome(field=model, steps=step, seconds=seconds, final_loss=final)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class EvalConfig:
    """How a fitted field is measured."""

    resolution: int = 256
    """Marching-cubes grid points per axis over [-1, 1]^3 (normalised units)."""
    num_samples: int = 200_000
    """Surface samples per mesh for the Chamfer distance (see nsr.metrics.geometry)."""
    keep_largest: bool = False
    """Keep only the largest connected component of the fitted surface (default: judge it raw)."""


@dataclass
class Evaluation:
    """The fitted surface against the mesh. Distances in the mesh's units."""

    iou: float
    """Intersection over union of field-inside (SDF < 0) and mesh-inside on the IoU points."""
    metrics: dict[str, float] | None
    """`nsr.metrics.mesh_metrics` of the extracted surface (None when extraction failed)."""
    mesh: trimesh.Trimesh | None
    """The extracted surface in mesh units (None when extraction failed)."""
    error: str | None = None
    """Why extraction failed (no zero crossing, non-finite values), else None."""


@torch.no_grad()
def field_iou(model: SDFField, samples: SDFSamples, chunk_size: int = 262144) -> float:
    """IoU of the field's inside (SDF < 0) with the ground-truth occupancy on the IoU points."""
    device = next(model.parameters()).device
    inside = []
    for start in range(0, len(samples.iou_points), chunk_size):
        chunk = torch.from_numpy(np.ascontiguousarray(samples.iou_points[start : start + chunk_size]))
        inside.append((model.sdf(chunk.to(device)) < 0).cpu().numpy())
    pred = np.concatenate(inside)
    truth = samples.iou_inside
    union = int(np.sum(pred | truth))
    return float(np.sum(pred & truth)) / union if union else 1.0


def evaluate_field(
    model: SDFField,
    samples: SDFSamples,
    gt_mesh: trimesh.Trimesh,
    config: EvalConfig,
    progress: ProgressFn | None = None,
) -> Evaluation:
    """IoU, then marching cubes in normalised units mapped to mesh units, then mesh metrics."""
    iou = field_iou(model, samples)
    device = next(model.parameters()).device
    try:
        unit_mesh = extract_mesh(
            model.sdf,
            resolution=config.resolution,
            bound=1.0,
            keep_largest=config.keep_largest,
            device=device,
            progress=progress,
        )
    except MeshError as error:
        return Evaluation(iou=iou, metrics=None, mesh=None, error=str(error))
    mesh = transform_mesh(unit_mesh, samples.normalization.to_mesh_matrix())
    metrics = mesh_metrics(mesh, gt_mesh, num_samples=config.num_samples, seed=0)
    return Evaluation(iou=iou, metrics=metrics, mesh=mesh)


# ---------------------------------------------------------------------------------------------
# All of it


@dataclass
class FitSDFResult:
    """One fit, as reported by `nsr fit-sdf --json` (distances in the mesh's units)."""

    mesh: str
    encoding: str
    chamfer: float | None
    """Symmetric sampled Chamfer distance, mesh units (None if no surface could be extracted)."""
    chamfer_rel: float | None
    """Chamfer divided by the mesh's bounding-box diagonal."""
    iou: float
    """Volumetric IoU against the mesh's occupancy, on uniform points of its bounding box."""
    seconds: float
    """Training time (ground truth, extraction and metrics excluded)."""
    steps: int
    fscore: float | None
    normal_consistency: float | None
    bbox_diagonal: float
    final_loss: float
    num_params: int
    network: str
    """e.g. `8x256 skip (4,)`."""
    lr: float
    batch_size: int
    device: str
    backend: str | None
    """The backend the encoding ran on (`torch`, `fused`, `tcnn`), for encodings that have one."""
    gt_backend: str
    """Distance backend that computed the ground truth, or `cache`."""
    gt_seconds: float
    eval_seconds: float
    resolution: int
    error: str | None = None
    """Why the surface could not be extracted, if it could not."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def encoding_backend(model: SDFField) -> str | None:
    """The backend the field's encoding (or its grid) actually runs, for encodings that have one."""
    for module in model.encoding.modules():
        backend = getattr(module, "backend", None)
        if isinstance(backend, str):
            return backend
    return None


def fit_mesh_sdf(
    mesh_path: str | Path,
    fit: FitSDFConfig,
    samples_config: SDFSamplesConfig | None = None,
    eval_config: EvalConfig | None = None,
    cache_dir: str | Path | None = None,
    gt_backend: DistanceBackend = "auto",
    on_step: Callable[[FitStep], None] | None = None,
    gt_progress: ProgressFn | None = None,
    mesh_progress: ProgressFn | None = None,
) -> tuple[FitSDFResult, Evaluation]:
    """Load, sample (or read the cache), fit, evaluate. Returns the report and the evaluation."""
    samples_config = samples_config or SDFSamplesConfig()
    eval_config = eval_config or EvalConfig()
    if fit.encoding is None:
        fit = dataclasses.replace(fit, encoding=encoding_config(fit.encoding_name))
    build_field(fit)  # fail fast on a bad encoding/network before the ground truth is computed
    device = resolve_fit_device(fit.device)
    mesh = load_mesh(mesh_path)
    samples = cached_samples(mesh_path, mesh, samples_config, cache_dir, gt_backend, device, gt_progress)
    outcome = fit_field(samples, fit, on_step)
    start = time.perf_counter()
    evaluation = evaluate_field(outcome.field, samples, mesh, eval_config, mesh_progress)
    eval_seconds = time.perf_counter() - start
    net = fit.network()
    metrics = evaluation.metrics or {}
    bounds = np.asarray(mesh.bounds)
    result = FitSDFResult(
        mesh=str(mesh_path),
        encoding=fit.encoding_name,
        chamfer=metrics.get("chamfer"),
        chamfer_rel=metrics.get("chamfer_rel"),
        iou=evaluation.iou,
        seconds=outcome.seconds,
        steps=outcome.steps,
        fscore=metrics.get("fscore"),
        normal_consistency=metrics.get("normal_consistency"),
        bbox_diagonal=float(np.linalg.norm(bounds[1] - bounds[0])),
        final_loss=outcome.final_loss,
        num_params=sum(p.numel() for p in outcome.field.parameters()),
        network=f"{net.num_layers}x{net.hidden_dim}"
        + (f" skip {net.skip_layers}" if net.skip_layers else ""),
        lr=net.lr,
        batch_size=fit.batch_size,
        device=str(device),
        backend=encoding_backend(outcome.field),
        gt_backend=samples.backend,
        gt_seconds=samples.seconds,
        eval_seconds=eval_seconds,
        resolution=eval_config.resolution,
        error=evaluation.error,
        extra={"torch": torch.__version__, "device_name": _device_name(device)},
    )
    return result, evaluation


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


__all__ = [
    "DIRECTION_ONLY",
    "GRID_NETWORK",
    "NETWORK_DEFAULTS",
    "EvalConfig",
    "Evaluation",
    "FitOutcome",
    "FitSDFConfig",
    "FitSDFError",
    "FitSDFResult",
    "FitStep",
    "NetworkDefaults",
    "Normalization",
    "SDFSamples",
    "SDFSamplesConfig",
    "build_field",
    "cache_path",
    "cached_samples",
    "encoding_backend",
    "encoding_config",
    "evaluate_field",
    "field_iou",
    "fit_field",
    "fit_mesh_sdf",
    "load_mesh",
    "parse_overrides",
    "point_encodings",
    "prepare_samples",
    "resolve_fit_device",
    "sdf_loss",
]
