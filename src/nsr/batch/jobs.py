"""The jobs file of `nsr batch`: which scenes, presets, seeds, budgets and overrides to run, read into one
`RunSpec` per combination.

A jobs file is YAML (docs/batch.md); relative paths are relative to the jobs file's folder:

    scenes: [data/dtu/scan*, data/spot]        # scene folders or globs (at least one)
    presets: [hashgrid-fused]                  # default [positional], as `nsr train`
    seeds: [0, 1, 2]                           # default [0]
    max_seconds: [30, 60, 120, 300]            # and/or steps: a number or a list; every budget is its own run
    steps: unlimited                           # with max_seconds: time-only budgets (not the preset's steps)
    overrides: {model.background: [1, 1, 1], cameras.pose_noise: "3,0.03,{seed}"}
    variants: {fixed: {cameras.trainable: false}, trained: {}}   # optional: named override sets
    gt_meshes: {data/spot: meshes/cow.obj}     # scene -> ground-truth mesh (world units)
    exclude: [{preset: hashgrid-fused, variant: unmasked}]   # optional: combinations not to run
    warm_up: 5                                 # optional: untimed steps of each (preset, variant) first

Every mistake is one `JobsError` line naming the file and the key. A scene's data (its folder, its GT mesh)
is checked only where one of its runs is to run (`load_runs`'s `only`, `nsr batch --only`), so that a
machine needs only the data of the runs it runs.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from nsr.cli.train import with_overrides
from nsr.config import TrainConfig, get_preset
from nsr.config.io import ConfigError, to_dict
from nsr.config.presets import PRESETS


class JobsError(ConfigError):
    """A jobs file that cannot be run: one line naming the file, the key and the problem."""

    def __init__(self, path: str | Path, key: str, problem: str) -> None:
        self.path, self.key, self.problem = Path(path), key, problem
        super().__init__(f"{path}: {key}: {problem}")


@dataclass
class BatchJobs:
    """The contents of a jobs file, with relative paths resolved against the file's folder."""

    scenes: list[str]
    """Scene folders (any format `nsr train` reads) or glob patterns; each glob must match a folder, and a
    folder must exist where one of its runs is to run."""
    presets: list[str] = field(default_factory=lambda: ["positional"])
    """Presets to train (`nsr train --preset`), each of them on every scene."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds of the runs (`seed`); `{seed}` in an override value is replaced by the run's seed."""
    steps: list[int] = field(default_factory=list)
    """Step budgets (empty: the preset's). With `max_seconds` too, every pair is a run, ending at whichever
    comes first (the schedules, in fractions of the run, follow whichever ends it). `unlimited` in the file
    (UNLIMITED_STEPS here) makes the time budgets the only ones."""
    max_seconds: list[float] = field(default_factory=list)
    """Training-time budgets in seconds (empty: none). Each budget is a separate run, never a snapshot of
    a longer one."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Dotted config keys -> values, applied after the preset, seed and budget exactly as `nsr train
    --KEY VALUE` applies them (lists: several values; booleans: true / false)."""
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Optional named sets of overrides (applied after `overrides`): every variant is one more dimension
    of the batch, e.g. the same runs with fixed and with trained cameras, or a sweep of one setting."""
    exclude: list[dict[str, Any]] = field(default_factory=list)
    """Combinations of the grid not to run: each entry names some of `scene` (its label, as in run names),
    `preset`, `variant`, `seed`, `max_seconds`, `steps`; a run that matches every key of an entry is left out.
    An entry that matches no run is an error (a typo would otherwise run everything)."""
    gt_meshes: dict[str, str] = field(default_factory=dict)
    """Scene folder (as it resolves) -> its ground-truth mesh or point cloud in world units: Chamfer and
    F-score for the runs of that scene."""
    holdout: int = 8
    """Every `holdout`-th view is held out of training and measured (PSNR, SSIM); 0: none held out."""
    mesh_resolution: int = 512
    """Marching-cubes resolution of each run's mesh."""
    geometry_samples: int = 200_000
    """Points sampled on each mesh for Chamfer and F-score."""
    cull_masks: int | Literal["auto"] | None = None
    """Cull both meshes' samples to what the scene's masks, dilated by this many pixels, show in every view
    that sees them (DTU's unmasked protocol, `nsr eval --cull masks`); `auto`: DTU's 12 px at 1600 px wide
    scaled to the masks' width (`nsr.metrics.geometry.auto_dilation`); None: no culling."""
    lpips: bool = False
    """Also measure LPIPS on the held-out views (needs the AlexNet weights in the torch cache)."""
    icp: bool = False
    """Also measure each mesh after moving it onto the GT mesh by ICP (`chamfer_icp_pct`): for runs whose cameras
    were trained, the surface's error without that of the alignment by the cameras; measure the fixed-camera
    runs so too, as the control (`nsr.metrics.geometry.icp_onto`)."""
    device: str = "auto"
    """Where each run trains: `auto` (the GPU Ray gives the run, else the CPU), `cpu` or `cuda`."""
    gpus_per_run: float | None = None
    """GPUs reserved for each run under Ray, at most 1 (a run trains on one GPU); a fraction packs several
    runs on one GPU (0.25: four). Default: 1 where the Ray cluster has GPUs, else 0."""
    cpus_per_run: float = 1.0
    """CPU cores reserved for each run under Ray (Ray also sets the run's OMP_NUM_THREADS, and so its torch
    threads, to it, unless OMP_NUM_THREADS is set already)."""
    max_retries: int = 3
    """Times Ray restarts a run whose worker process or node died; it resumes from its latest checkpoint.
    Runs that fail on their input are not retried."""
    report: bool = True
    """Write each run's HTML report (RUN/report.html, as `nsr report`)."""
    warm_up: int = 0
    """Steps of an untimed, unmeasured run of each (preset, variant) the batch is about to run, before its timed
    runs (in OUT/warm_up/, deleted after; `nsr.batch.pipeline.warm_up`): what a process's first steps compile
    (the banks' training chains under Inductor, Triton's kernels) is then in the machine's caches, and every
    timed run starts as warm as the batch's later runs do, so that the first runs do not pay tens of seconds of
    their budget that the others do not (each run's `setup_seconds` shows what is left). 0: none. The budgets of
    a real first run on a cold machine include the compile; a warm-up measures the runs without it."""


def packing_note(gpus_per_run: float | None) -> str | None:
    """A warning where a fractional `gpus_per_run` just misses packing one more run a GPU: Ray starts a run
    only where its whole fraction is free, so 0.34 packs two runs (0.68), not the three it looks like; None
    where the fraction packs as it looks (0.33, 0.25, or 0.3 that leaves room on purpose)."""
    if gpus_per_run is None or not 0 < gpus_per_run < 1:
        return None
    runs = math.floor(1 / gpus_per_run + 1e-9)
    idle = 1 - runs * gpus_per_run
    better = 1 / (runs + 1)
    if (gpus_per_run - better) / gpus_per_run > 0.1:  # not within 10% of the next packing
        return None
    return (
        f"gpus_per_run {gpus_per_run:g} packs {runs} run{'s' * (runs > 1)} per GPU and leaves {idle:.2f} of it "
        f"unused; {math.floor(better * 100) / 100:g} packs {runs + 1}"
    )


KEYS = [f.name for f in dataclasses.fields(BatchJobs)]
UNLIMITED_STEPS = 10**9
"""The step budget of `steps: unlimited`: a run that only its time budget ends (tables show no steps)."""
_LIST_KEYS = {"scenes": str, "presets": str, "seeds": int, "steps": int, "max_seconds": (int, float)}
_SCALAR_KEYS = {
    "holdout": int,
    "mesh_resolution": int,
    "geometry_samples": int,
    "cull_masks": (int, str),
    "lpips": bool,
    "icp": bool,
    "device": str,
    "gpus_per_run": (int, float),
    "cpus_per_run": (int, float),
    "max_retries": int,
    "report": bool,
    "warm_up": int,
}

_KIND_NAMES = {int: "an integer", str: "a string", bool: "true or false"}


@dataclass(frozen=True)
class RunSpec:
    """One run of a batch: plain data, so that it travels to a Ray worker and into the run folder."""

    name: str
    """The run folder's name inside OUT/runs/ (scene, preset, budget, seed)."""
    scene: str
    """The scene folder (absolute)."""
    scene_label: str
    """The scene's short name in tables (its folder name, or more of its path where names repeat)."""
    preset: str
    variant: str
    """The variant's name ("" without variants)."""
    seed: int
    steps: int | None
    max_seconds: float | None
    overrides: tuple[str, ...]
    """`key=value` strings for `nsr.cli.train.with_overrides` (`{seed}` already replaced)."""
    holdout: int
    device: str
    gt_mesh: str | None
    mesh_resolution: int
    geometry_samples: int
    lpips: bool
    report: bool
    cull_masks: int | str | None = None
    icp: bool = False

    @property
    def budget(self) -> str:
        """The budget as a table shows it: `60s`, `5000steps`, `5000steps-60s`, or `preset`."""
        parts = []
        if self.steps is not None and not (self.steps >= UNLIMITED_STEPS and self.max_seconds is not None):
            parts.append(f"{self.steps}steps")
        if self.max_seconds is not None:
            parts.append(f"{self.max_seconds:g}s")
        return "-".join(parts) or "preset"

    def train_key(self) -> str:
        """Fingerprint of what decides the training (a run folder never mixes two): the job's fields and the
        config they resolve to, so a run of a preset as it was before a change counts as another job."""
        keys = ("scene", "preset", "variant", "seed", "steps", "max_seconds", "overrides", "holdout")
        fields = {k: getattr(self, k) for k in keys}
        return _digest({**fields, "config": to_dict(build_config(self))})

    def eval_key(self) -> str:
        """Fingerprint of what decides the measurements of a trained run."""
        keys = ("gt_mesh", "mesh_resolution", "geometry_samples", "lpips", "report", "cull_masks")
        fields = {k: getattr(self, k) for k in keys}
        if self.icp:  # only when on, so that the runs measured before the key existed stay measured
            fields["icp"] = True
        return _digest(fields)


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_jobs(path: str | Path) -> BatchJobs:
    """Read and check a jobs file (module docstring), the data of every scene included; paths come back
    absolute."""
    jobs, problems = _read_jobs(Path(path))
    _check_data(problems, jobs.scenes)
    return jobs


def _read_jobs(path: Path) -> tuple[BatchJobs, dict[str, JobsError]]:
    """Read and check a jobs file but for its scenes' data; with, per scene folder, the first problem of its
    data (the folder or its GT mesh missing), for `_check_data` to raise for the scenes that are to run."""
    if not path.is_file():
        raise JobsError(path, "file", "jobs file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise JobsError(path, "file", f"not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise JobsError(path, "file", "expected a mapping of keys (scenes, presets, seeds, ...)")
    for key in data:
        if key not in KEYS:
            raise JobsError(path, str(key), f"unknown key (known keys: {', '.join(KEYS)})")
    if not data.get("scenes"):
        raise JobsError(path, "scenes", "no scenes given (a list of scene folders or globs)")
    values: dict[str, Any] = {}
    if data.get("steps") == "unlimited":
        if "max_seconds" not in data:
            raise JobsError(path, "steps", "unlimited needs max_seconds (a time budget to end the runs)")
        data["steps"] = UNLIMITED_STEPS
    for key, kind in _LIST_KEYS.items():
        if key in data:
            values[key] = _as_list(path, key, data[key], kind)
    for key, kind in _SCALAR_KEYS.items():
        if key in data and data[key] is not None:
            values[key] = _check(path, key, data[key], kind)
    for key in ("overrides", "gt_meshes", "variants"):
        if data.get(key) is not None:
            if not isinstance(data[key], dict):
                raise JobsError(path, key, f"expected a mapping, got {data[key]!r}")
            values[key] = {str(k): v for k, v in data[key].items()}
    for name, overrides in values.get("variants", {}).items():
        if not isinstance(overrides, dict | type(None)) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise JobsError(
                path, "variants", f"{name!r}: expected NAME (letters, digits, _.-): {{key: value}}"
            )
        values["variants"][name] = {str(k): v for k, v in (overrides or {}).items()}
    if data.get("exclude") is not None:
        values["exclude"] = _exclusions(path, data["exclude"])
    jobs = BatchJobs(**values)
    base = path.parent
    problems: dict[str, JobsError] = {}
    jobs.scenes = _resolve_scenes(path, base, jobs.scenes, problems)
    jobs.gt_meshes = _resolve_gt_meshes(path, base, jobs.gt_meshes, jobs.scenes, problems)
    _check_values(path, jobs)
    return jobs, problems


def _check_data(problems: dict[str, JobsError], scenes: Iterable[str]) -> None:
    """Raise the first problem (`_read_jobs`) of the data of `scenes`, in their order."""
    for scene in scenes:
        if scene in problems:
            raise problems[scene]


EXCLUDE_KEYS = {
    "scene": str,
    "preset": str,
    "variant": str,
    "seed": int,
    "max_seconds": (int, float),
    "steps": int,
}
"""The keys of an `exclude` entry and their types."""


def _exclusions(path: Path, value: Any) -> list[dict[str, Any]]:
    entries = value if isinstance(value, list) else [value]
    for entry in entries:
        if not isinstance(entry, dict) or not entry:
            raise JobsError(
                path, "exclude", f"{entry!r}: expected a mapping such as {{preset: P, variant: V}}"
            )
        for key, item in entry.items():
            if key not in EXCLUDE_KEYS:
                raise JobsError(path, "exclude", f"{key!r}: unknown key (known: {', '.join(EXCLUDE_KEYS)})")
            _check(path, f"exclude: {key}", item, EXCLUDE_KEYS[key])
    return [dict(entry) for entry in entries]


def excluded(spec: RunSpec, entry: dict[str, Any]) -> bool:
    """Whether `spec` matches every key of an `exclude` entry."""
    values = {
        "scene": spec.scene_label,
        "preset": spec.preset,
        "variant": spec.variant,
        "seed": spec.seed,
        "max_seconds": spec.max_seconds,
        "steps": spec.steps,
    }
    return all(values[key] == value for key, value in entry.items())


def _as_list(path: Path, key: str, value: Any, kind: type | tuple) -> list:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise JobsError(path, key, "empty list")
    return [_check(path, key, v, kind) for v in items]


def _check(path: Path, key: str, value: Any, kind: type | tuple) -> Any:
    # bool is an int in Python: refuse `seeds: [true]` but accept `lpips: true`.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = "a number" if float in kinds else _KIND_NAMES[kinds[0]]
        raise JobsError(path, key, f"{value!r} is not {expected}")
    return value


def _resolve(base: Path, text: str) -> Path:
    """An absolute path, `..` folded but symbolic links kept (scene names follow what the file says)."""
    p = Path(text).expanduser()
    return Path(os.path.abspath(p if p.is_absolute() else base / p))


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _resolve_scenes(path: Path, base: Path, patterns: list[str], problems: dict[str, JobsError]) -> list[str]:
    """The scene folders (absolute) of `scenes`: a glob must match a folder here; a missing folder is a
    problem of that scene (`problems`), raised only where one of its runs is to run."""
    scenes: list[str] = []
    for pattern in patterns:
        full = _resolve(base, pattern)
        if glob.has_magic(pattern):
            found = sorted(Path(p) for p in glob.glob(str(full)) if Path(p).is_dir())
            if not found:
                raise JobsError(path, "scenes", f"{pattern!r} matches no folder (looked in {base})")
        else:
            found = [full]
            if not full.is_dir():
                error = JobsError(path, "scenes", f"{pattern!r}: no such folder ({full})")
                problems.setdefault(str(full), error)
        scenes += [str(p) for p in map(_absolute, found) if str(p) not in scenes]
    return scenes


def _resolve_gt_meshes(
    path: Path, base: Path, meshes: dict[str, Any], scenes: list[str], problems: dict[str, JobsError]
) -> dict[str, str]:
    """Scene folder -> GT mesh (both absolute); a missing mesh is a problem of its scene (`problems`)."""
    resolved = {}
    for scene, mesh in meshes.items():
        key = str(_resolve(base, scene))
        if key not in scenes:
            raise JobsError(path, "gt_meshes", f"{scene!r} is not one of the scenes ({key})")
        mesh_path = _resolve(base, str(mesh))
        if not mesh_path.is_file():
            error = JobsError(path, "gt_meshes", f"{scene!r}: mesh {mesh!r} not found ({mesh_path})")
            problems.setdefault(key, error)
        resolved[key] = str(mesh_path)
    return resolved


def _check_values(path: Path, jobs: BatchJobs) -> None:
    for preset in jobs.presets:
        if preset not in PRESETS:
            raise JobsError(path, "presets", f"unknown preset {preset!r} (available: {', '.join(PRESETS)})")
    for key in ("steps", "max_seconds"):
        if any(v <= 0 for v in getattr(jobs, key)):
            raise JobsError(path, key, "budgets must be > 0")
    if len(set(jobs.seeds)) != len(jobs.seeds):
        raise JobsError(path, "seeds", "a seed is listed twice")
    for key in ("holdout", "max_retries", "warm_up"):
        if getattr(jobs, key) < 0:
            raise JobsError(path, key, "must be >= 0")
    if jobs.mesh_resolution < 8 or jobs.geometry_samples < 1:
        raise JobsError(path, "mesh_resolution", "must be >= 8 (and geometry_samples >= 1)")
    if jobs.gpus_per_run is not None and not 0 <= jobs.gpus_per_run <= 1:
        raise JobsError(path, "gpus_per_run", "must be between 0 and 1 (a run trains on one GPU)")
    if jobs.cpus_per_run <= 0:
        raise JobsError(path, "cpus_per_run", "must be > 0")
    if (isinstance(jobs.cull_masks, str) and jobs.cull_masks != "auto") or (
        isinstance(jobs.cull_masks, int) and jobs.cull_masks < 0
    ):
        raise JobsError(
            path, "cull_masks", f"{jobs.cull_masks!r}: expected a dilation in pixels >= 0 or auto"
        )


def override_strings(overrides: dict[str, Any], seed: int) -> tuple[str, ...]:
    """Jobs-file overrides as `key=value` strings for `with_overrides` (`{seed}` replaced)."""
    items = []
    for key, value in overrides.items():
        if isinstance(value, list | tuple):
            text = " ".join(_scalar_text(v) for v in value)
        else:
            text = _scalar_text(value)
        items.append(f"{key}={text.replace('{seed}', str(seed))}")
    return tuple(items)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def scene_labels(scenes: list[str]) -> dict[str, str]:
    """A short unique name per scene folder: its name, or as many trailing path parts as tell it apart."""
    parts = {s: Path(s).parts for s in scenes}
    for depth in range(1, max((len(p) for p in parts.values()), default=1) + 1):
        labels = {s: "_".join(p[-depth:]) for s, p in parts.items()}
        if len(set(labels.values())) == len(labels):
            return {s: re.sub(r"[^A-Za-z0-9_.-]+", "_", label) for s, label in labels.items()}
    return {s: f"scene{i}" for i, s in enumerate(scenes)}


def expand(jobs: BatchJobs) -> list[RunSpec]:
    """Every combination scene x preset x variant x budget x seed, in that order (seeds vary fastest);
    `exclude` is applied by `load_runs`."""
    labels = scene_labels(jobs.scenes)
    budgets = [(s, t) for s in (jobs.steps or [None]) for t in (jobs.max_seconds or [None])]
    variants = jobs.variants or {"": {}}
    specs = []
    for scene, preset, (variant, extra), (steps, seconds), seed in itertools.product(
        jobs.scenes, jobs.presets, variants.items(), budgets, jobs.seeds
    ):
        spec = RunSpec(
            name="",
            scene=scene,
            scene_label=labels[scene],
            preset=preset,
            variant=variant,
            seed=seed,
            steps=steps,
            max_seconds=None if seconds is None else float(seconds),
            overrides=override_strings({**jobs.overrides, **extra}, seed),
            holdout=jobs.holdout,
            device=jobs.device,
            gt_mesh=jobs.gt_meshes.get(scene),
            mesh_resolution=jobs.mesh_resolution,
            geometry_samples=jobs.geometry_samples,
            cull_masks=jobs.cull_masks,
            lpips=jobs.lpips,
            report=jobs.report,
            icp=jobs.icp,
        )
        parts = [spec.scene_label, preset, variant, spec.budget, f"seed{seed}"]
        specs.append(dataclasses.replace(spec, name="_".join(p for p in parts if p)))
    return specs


def build_config(spec: RunSpec) -> TrainConfig:
    """The run's training config: the preset, then the scene, hold-out, seed, device and budget, then the
    overrides (as `nsr train --preset P --steps N ... --KEY VALUE` would give it)."""
    config = get_preset(spec.preset)
    config.data.path = Path(spec.scene)
    config.data.holdout_every = spec.holdout
    config.seed = spec.seed
    config.device = spec.device
    if spec.steps is not None:
        config.steps = spec.steps
    if spec.max_seconds is not None:
        config.max_seconds = spec.max_seconds
    return with_overrides(config, list(spec.overrides))


def selected(spec: RunSpec, only: Sequence[str]) -> bool:
    """Whether `spec`'s name matches one of the shell patterns `only` (every run when there are none)."""
    return not only or any(fnmatch.fnmatchcase(spec.name, pattern) for pattern in only)


def load_runs(path: str | Path, only: Sequence[str] = ()) -> tuple[BatchJobs, list[RunSpec]]:
    """The jobs file and all its runs, with every distinct config built once so that a bad override is found
    before anything runs. `only`: shell patterns of the runs to run (`selected`, `nsr batch --only`; at least
    one run must match); the data of only their scenes is checked, so the other scenes may be absent here."""
    path = Path(path)
    jobs, problems = _read_jobs(path)
    grid = expand(jobs)
    for entry in jobs.exclude:
        if not any(excluded(spec, entry) for spec in grid):
            raise JobsError(path, "exclude", f"{entry}: matches no run of the grid")
    specs = [spec for spec in grid if not any(excluded(spec, entry) for entry in jobs.exclude)]
    if not specs:
        raise JobsError(path, "exclude", "leaves no run")
    _check_data(problems, (spec.scene for spec in _chosen(path, specs, only)))
    checked = set()
    for spec in specs:
        key = (spec.preset, spec.variant, spec.steps, spec.max_seconds)
        if key in checked:
            continue
        checked.add(key)
        try:
            build_config(spec)
        except ConfigError as err:
            raise JobsError(path, "overrides", str(err)) from None
        except SystemExit:  # tyro refused a value (its message is printed above)
            raise JobsError(path, "overrides", "a value was refused (see above)") from None
    return jobs, specs


def _chosen(path: Path, specs: list[RunSpec], only: Sequence[str]) -> list[RunSpec]:
    """The runs of `specs` that `only` selects; an error where it selects none."""
    chosen = [spec for spec in specs if selected(spec, only)]
    if not chosen:
        names = ", ".join(spec.name for spec in specs[:3]) + (", ..." if len(specs) > 3 else "")
        raise JobsError(path, "--only", f"{' '.join(only)} matches none of its runs ({names})")
    return chosen
