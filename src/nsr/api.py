"""NSR from Python (notebooks, scripts): load a scene, train, get the mesh, evaluate, report.

    import nsr

    scene = nsr.load_scene("path/to/scene")              # any supported format (docs/data.md)
    run = nsr.train(scene, preset="demo", max_seconds=120, out="runs/demo")
    mesh = run.mesh()                                      # trimesh.Trimesh in world units
    metrics = run.evaluate()                               # held-out PSNR / SSIM / LPIPS (+ gt_mesh=...)
    run.report()                                           # runs/demo/report.html

A front end beside the command line, on the same code: `nsr.train` writes the run folder `nsr train`
writes (re-open it with `nsr.open_run`, or use every `nsr` command on it), `run.evaluate` is `nsr eval`
and `run.report` is `nsr report`. Like the command line it shows progress bars (tqdm, on stderr).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import trimesh

from nsr.data.scene import SceneData


@dataclass
class Scene:
    """A scene read from a folder, with how it was read (a run folder records it, to re-open it)."""

    data: SceneData
    """Images, masks and cameras in the normalised frame."""
    path: Path
    """The scene folder."""
    format: str = "auto"
    """The format it was read as (`auto`, `idr`, `nerf-synthetic`, `colmap`)."""
    downscale: float = 1.0
    """The image downscale it was read at."""
    camera_file: str | None = None
    """IDR layout: the camera npz inside the folder (None: cameras.npz, then cameras_sphere.npz)."""

    @property
    def num_views(self) -> int:
        return self.data.num_views

    @property
    def height(self) -> int:
        return self.data.height

    @property
    def width(self) -> int:
        return self.data.width

    def __repr__(self) -> str:
        return f"Scene({str(self.path)!r}: {self.num_views} views of {self.width}x{self.height})"


def load_scene(
    path: str | Path, format: str = "auto", downscale: float = 1.0, camera_file: str | None = None
) -> Scene:
    """Read a scene folder (IDR/DTU/NeuS, NeRF-synthetic, COLMAP; `auto` detects the format) at an image
    `downscale`. Errors name the file and the problem (`nsr.data.errors.DataError`)."""
    from nsr.data.formats import load_scene as read

    path = Path(path)
    data = read(path, format, downscale=downscale, camera_file=camera_file)
    return Scene(data=data, path=path, format=format, downscale=downscale, camera_file=camera_file)


@dataclass
class TrainedRun:
    """A run folder written by training, opened at a checkpoint (the model is loaded when first used)."""

    path: Path
    """The run folder."""
    checkpoint: str = "latest"
    """The checkpoint used: `latest`, a step number or a file name in RUN/checkpoints."""
    device: str = "auto"
    """Where the model computes (`auto`: CUDA when present)."""
    _run: object = field(default=None, repr=False)

    @property
    def run(self):
        """The opened run (`nsr.engine.run.Run`: config, model, step, world transform, view split)."""
        if self._run is None:
            from nsr.engine.run import open_run as open_folder

            self._run = open_folder(self.path, self.checkpoint, self.device)
        return self._run

    @property
    def model(self):
        """The trained model (`nsr.models.Model`)."""
        return self.run.model

    @property
    def config(self):
        """The run's `TrainConfig`."""
        return self.run.config

    @property
    def step(self) -> int:
        return self.run.step

    def mesh(self, resolution: int = 256, save: str | Path | None = None) -> trimesh.Trimesh:
        """The surface by marching cubes at `resolution`, in world units (the scene's scale_mat); written to
        `save` (PLY) when given."""
        from nsr.evaluation.meshes import extract_world_mesh
        from nsr.mesh.extract import save_mesh

        mesh = extract_world_mesh(self.model, self.run.scale_mat, resolution)
        if save is not None:
            save_mesh(mesh, Path(save))
        return mesh

    def evaluate(
        self,
        split: str = "test",
        gt_mesh: str | Path | None = None,
        antialias: int = 4,
        downscale: float | None = None,
        **options,
    ) -> dict:
        """`nsr eval` on this run: image metrics on `split` (held-out views by default; anti-aliased with
        `antialias` x `antialias` rays per silhouette pixel), and with `gt_mesh` the geometry metrics (then
        images only with `images="on"`). Other `nsr eval` options by name (e.g. `cull="masks"`,
        `resolution=512`). Writes RUN/eval/step_XXXXXXX/ and returns the flat result (docs/evaluation.md)."""
        from nsr.cli.eval import EvalArgs, evaluate

        args = EvalArgs(
            run=self.path,
            checkpoint=self.checkpoint,
            split=split,
            gt_mesh=None if gt_mesh is None else Path(gt_mesh),
            antialias=antialias,
            downscale=downscale,
            device=self.device,
            **options,
        )
        result, _ = evaluate(args)
        return result

    def report(self, out: str | Path | None = None, compare: str | Path | TrainedRun | None = None) -> Path:
        """`nsr report` on this run (beside `compare`'s held-out renders when given) -> the HTML file."""
        from nsr.atomic import atomic_write
        from nsr.cli.report import ReportArgs, build_report

        other = compare.path if isinstance(compare, TrainedRun) else compare
        args = ReportArgs(run=self.path, compare=None if other is None else Path(other), device=self.device)
        page = build_report(args)
        target = Path(out) if out is not None else self.path / "report.html"
        return atomic_write(target, lambda f: f.write(page.encode()))


def open_run(path: str | Path, checkpoint: str = "latest", device: str = "auto") -> TrainedRun:
    """A run folder written by `nsr train`, `nsr demo` or `nsr.train`, at `checkpoint`; a folder whose
    config.yaml is lost opens from the config its checkpoints hold (as `nsr train --resume` does)."""
    from nsr.engine.run import open_run as open_folder

    path = Path(path)
    return TrainedRun(
        path=path, checkpoint=checkpoint, device=device, _run=open_folder(path, checkpoint, device)
    )


def train(
    scene: Scene | str | Path,
    preset: str = "demo",
    out: str | Path | None = None,
    steps: int | None = None,
    max_seconds: float | None = None,
    holdout: int = 8,
    device: str = "auto",
    seed: int = 0,
    overrides: dict | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainedRun:
    """Train `preset` on a scene (a `Scene` or a folder) into the run folder `out` (default
    runs/<preset>-<date>-<time>), as `nsr train` does.

    Args:
        steps, max_seconds: the run's length; the run ends at whichever comes first (the schedules follow
            it), None = the preset's.
        holdout: every `holdout`-th view is held out for `evaluate` (0 = train on all views).
        overrides: any config field by its dotted name, e.g. `{"optim.lr": 5e-4, "rays_per_batch": 1024}`
            (parsed as `nsr train --optim.lr 5e-4` parses it).
        resume: continue the run in `out` from its latest checkpoint (otherwise a folder that already
            holds a run is refused).
        progress: show a progress bar.
    """
    from nsr.cli.train import parse
    from nsr.config import get_preset
    from nsr.engine.run import RunError
    from nsr.engine.trainer import Trainer

    if not isinstance(scene, Scene):
        scene = load_scene(scene)
    config = get_preset(preset)
    if overrides:
        config = parse(["--out", "unused", *_override_argv(overrides)], config).config
    config.data.path = scene.path
    config.data.format = scene.format
    config.data.downscale = scene.downscale
    config.data.camera_file = scene.camera_file
    config.data.holdout_every = holdout
    config.device = device
    config.seed = seed
    if steps is not None:
        config.steps = steps
    if max_seconds is not None:
        config.max_seconds = max_seconds
    out = Path(out) if out is not None else Path("runs") / f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not resume and (out / "checkpoints" / "latest.pt").is_file():
        raise RunError(f"{out} already holds a run; pass resume=True to continue it")
    trainer = Trainer(config, scene.data, out)
    if progress:
        from nsr.cli.common import train_with_progress

        train_with_progress(trainer, resume=resume)
    else:
        from nsr.engine.machine import record_machine

        if resume:
            trainer.resume()
        record_machine(out, trainer.device, trainer.step)
        trainer.train()
    return TrainedRun(path=out, device=device)


def _override_argv(overrides: dict) -> list[str]:
    """`{"optim.lr": 5e-4, "tensorboard": False}` as `nsr train` flags: `--optim.lr 5e-4 --no-tensorboard`."""
    argv: list[str] = []
    for key, value in overrides.items():
        flag = key.replace("_", "-")
        if isinstance(value, bool):
            head, _, last = flag.rpartition(".")
            argv.append(f"--{flag}" if value else f"--{head + '.' if head else ''}no-{last}")
        elif isinstance(value, list | tuple):
            argv += [f"--{flag}", *(str(v) for v in value)]
        else:
            argv += [f"--{flag}", str(value)]
    return argv
