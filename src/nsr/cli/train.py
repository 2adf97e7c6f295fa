"""`nsr train --data DIR --out RUN [--preset NAME] [overrides] [--resume]`."""

from __future__ import annotations

import copy
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, get_type_hints

import tyro

from nsr.atomic import check_writable_folder
from nsr.checks import flag, validate_config
from nsr.cli.common import friendly, train_with_progress
from nsr.cli.kinds import apply_kind_switches, union_kinds
from nsr.config import PRESETS, TrainConfig, get_preset
from nsr.config.io import ConfigError
from nsr.config.train import config_changes, resume_conflicts
from nsr.data.formats import load_scene
from nsr.engine.checkpoint import load_checkpoint, load_newest, step_checkpoints
from nsr.engine.errors import RunError
from nsr.engine.lock import RunLock
from nsr.engine.run import checkpoint_path, run_config
from nsr.engine.trainer import Trainer

PresetName = Literal[tuple(PRESETS)]  # the preset names, as choices on the command line
ALIASES = {
    "--data": "--data.path",
    "--downscale": "--data.downscale",
    "--background": "--data.background",
    "--holdout": "--data.holdout-every",
    "--format": "--data.format",
    "--no-masks": "--data.no-use-masks",
    "--pose-noise": "--cameras.pose-noise",
    "--camera-init": "--cameras.init-file",
}
"""Short flags users try first -> the config field they set (both spellings work)."""

SHORT_FLAGS = (
    ("--data DIR", "the scene folder (--data.path)"),
    ("--preset NAME", "the preset to start from (listed below)"),
    ("--steps N", "optimisation steps"),
    ("--max-seconds S", "training-time budget; the schedules follow whichever limit ends the run"),
    ("--downscale D", "divide the image size by D (--data.downscale)"),
    ("--background auto|white|black|R,G,B", "background colour of the images (--data.background)"),
    ("--holdout K", "hold out every K-th view for evaluation (--data.holdout-every)"),
    ("--no-masks", "train on whole images (--data.no-use-masks; NeuS presets)"),
    ("--format F", "scene format, default auto (--data.format)"),
    (
        "--pose-noise R,T[,SEED]",
        "perturb the start poses: degrees, fraction of the distance (--cameras.pose-noise)",
    ),
    ("--camera-init FILE", "start from this camera file (--cameras.init-file)"),
    ("--device D", "auto, cpu, cuda, cuda:1, ..."),
    ("--threads N", "CPU threads (default: OMP_NUM_THREADS, else chosen from the free cores)"),
    ("--resume", "continue the run in --out from its latest checkpoint"),
)
"""The flags listed at the top of `nsr train --help`."""


def help_text() -> str:
    """The description of `nsr train --help`: the short flags first, then how overrides work."""
    width = max(len(flag) for flag, _ in SHORT_FLAGS)
    lines = ["Train a model (IDR or NeuS, by preset) on a scene folder.", "", "Short flags:"]
    lines += [f"  {flag:<{width}}  {text}" for flag, text in SHORT_FLAGS]
    lines += [
        "",
        "Every field of the preset can be overridden, e.g. --model.sdf.hidden-dim 256; presets NAME-cams "
        "also optimise the cameras (docs/cameras.md).",
        "",
        "--model.sdf.encoding KIND (or --model.appearance.view-encoding KIND) switches an encoding to another "
        "kind with its defaults (positional, fourier, sh, hashgrid, nffb, stylemod-nffb); the options below "
        "are those of the preset's kinds, and --model.sdf.encoding KIND --help lists the new ones.",
    ]
    return "\n".join(lines)


def expand_aliases(argv: list[str]) -> list[str]:
    """`argv` with the short flags (`--downscale 2`, `--downscale=2`) spelled as their config fields."""
    out = []
    for arg in argv:
        flag, sep, value = arg.partition("=")
        if flag in ALIASES:
            arg = ALIASES[flag] + sep + value
        out.append(arg)
    return out


@dataclass
class TrainArgs:
    """Train a model on a scene folder (`help_text` is what `nsr train --help` shows)."""

    out: Path
    """Run folder (created; holds config.yaml, checkpoints/, validation/, tensorboard/)."""
    preset: PresetName = "positional"
    """Preset to start from (its fields can then be overridden)."""
    resume: bool = False
    """Continue the run in `out` from its latest checkpoint, with its saved config. Flags given with it
    change that config where a run can change (`--steps N` extends a finished run to N steps, optimiser
    settings, budgets, cadences, `--device`, `--data DIR` for a moved scene); a flag that changes the
    model or the data is refused."""
    from_checkpoint: str | None = None
    """With --resume: continue from this checkpoint instead of the latest (a step number, a file name in
    RUN/checkpoints, or a path); later step checkpoints move to RUN/checkpoints/superseded/."""
    config: Annotated[TrainConfig, tyro.conf.arg(name="")] = field(default_factory=TrainConfig)


def _preset_name(argv: list[str]) -> str:
    return _flag_value(argv, "--preset") or "positional"


def parse(argv: list[str], config: TrainConfig | None = None) -> TrainArgs:
    """`nsr train`'s arguments; overrides apply to `config` if given, else to the named preset."""
    argv = expand_aliases(argv)
    preset = _preset_name(argv)
    default = TrainArgs(out=Path("runs/run"), preset=preset, config=config or get_preset(preset))
    argv = apply_kind_switches(default.config, argv)
    # Union fields show the preset's kind (no subcommands), so nested overrides need no subcommand name.
    return tyro.cli(
        TrainArgs,
        args=argv,
        default=default,
        prog="nsr train",
        description=help_text(),
        config=(tyro.conf.AvoidSubcommands,),
    )


def _flag_value(argv: list[str], flag: str) -> str | None:
    """The value given to `flag` (`--flag V` or `--flag=V`), the last one if repeated, else None."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def with_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """`config` with `dotted.key=value` overrides, parsed as `nsr train --dotted.key value` parses them
    (same values, kinds and errors; several values: space-separated), e.g. `optim.lr=3e-4`. A boolean
    field takes `true` or `false` (`nsr train`'s `--key` / `--no-key`), a string field the whole value
    (`cameras.pose_noise=` clears it); a key that names no field of `config` raises ConfigError."""
    argv = ["--out", "unused"]
    switched: set[str] = set()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"override {item!r}: expected KEY=VALUE")
        flag = key.replace("_", "-")
        kind = _field_type(config, key.replace("-", "_").removesuffix(".kind"), switched)
        if kind is bool:
            if value.strip().lower() not in ("true", "false"):
                raise ConfigError(f"override {item!r}: {key} is true or false")
            head, _, name = flag.rpartition(".")  # --cameras.trainable / --cameras.no-trainable
            no = "" if value.strip().lower() == "true" else "no-"
            argv.append(f"--{head}{'.' if head else ''}{no}{name}")
        elif kind is str:
            argv += ["--" + flag, value]  # one value, spaces and all (also the empty string)
        else:
            argv += ["--" + flag, *value.split()]
    return parse(argv, config).config


def _field_type(config: object, key: str, switched: set[str]) -> object:
    """The type of the field `key` (dotted) of `config`, walking union fields through the kind `config`
    holds; None at or past a union field that an earlier override (`switched`) gave another kind, or for a
    union field itself; ConfigError when a name is not a field."""
    node: object = config
    names = key.replace("-", "_").split(".")
    for i, name in enumerate(names):
        fields = {f.name for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else set()
        if name not in fields:
            raise ConfigError(f"override {key!r}: {type(node).__name__} has no field {name!r}")
        tp = get_type_hints(type(node))[name]
        if union_kinds(tp):
            path = ".".join(names[: i + 1])
            if i == len(names) - 1:
                switched.add(path)  # a kind switch: what follows it is checked by tyro
                return None
            if path in switched:
                return None
        elif i == len(names) - 1:
            return tp
        node = getattr(node, name)
    return None


def run(argv: list[str]) -> int:
    return friendly(lambda: _run(argv))


def _first_parse(argv: list[str]) -> TrainArgs:
    """`parse(argv)`; for `--resume` without `--preset`, against the run's saved config.yaml, so that the
    flags of its own kinds (its encoding's, its renderer's) are known (the default preset has others)."""
    expanded = expand_aliases(argv)
    config_file = Path(_flag_value(expanded, "--out") or "runs/run") / "config.yaml"
    if "--resume" in expanded and _flag_value(expanded, "--preset") is None and config_file.is_file():
        try:
            return parse(argv, run_config(config_file.parent))
        except ConfigError:
            pass  # a damaged config.yaml: the resume below says what is wrong with it
    return parse(argv)


def _run(argv: list[str]) -> int:
    args = _first_parse(argv)
    if args.from_checkpoint is not None and not args.resume:
        raise ConfigError("--from-checkpoint continues a run: give --resume too")
    if not args.resume:
        validate_config(args.config)  # before anything is created (a resumed run's config is checked below)
    if args.resume and not args.out.is_dir():
        raise RunError(f"{args.out}: nothing to resume (no such folder); drop --resume to start a run there")
    # Before any work: the run folder can be written, and no other process trains into it.
    check_writable_folder(args.out)
    with RunLock(args.out):
        resumed = _resume_point(args) if args.resume else None
        if resumed is None:
            if args.resume and not (args.out / "config.yaml").is_file():
                raise RunError(
                    f"{args.out}: nothing to resume (no config.yaml, no checkpoint); drop --resume"
                )
            if not args.resume and _holds_run(args.out):
                raise RunError(f"{args.out} already holds a run; use --resume to continue it")
        config = resumed_config(argv, args, resumed) if args.resume else args.config
        validate_config(config)
        if config.data.path is None:
            raise ConfigError("no scene given (use --data DIR)")
        scene = load_scene(
            config.data.path, config.data.format, config.data.downscale, camera_file=config.data.camera_file
        )
        trainer = Trainer(config, scene, args.out)
        if resumed is not None:
            path, state = resumed
            trainer.resume(path, state)
            how = "" if path.name == "latest.pt" else f" (from {path.name})"
            print(f"resuming {trainer.run_dir} at step {trainer.step}{how}")
        if resumed is not None and trainer.finished():
            more = f"--steps N (N > {trainer.step})"
            if trainer.step < config.steps:  # the time budget ended it
                more = f"--max-seconds S (S > {trainer.seconds:.0f})"
            print(
                f"{args.out} is complete at step {trainer.step} of {config.steps}; "
                f"to train longer: nsr train --out {args.out} --resume {more}"
            )
            return 0
        train_with_progress(trainer, resume=False)
    print(f"done: {trainer.step} steps in {trainer.seconds:.0f} s of training; run folder {args.out}")
    return 0


SCENE_DERIVED = ("model.background", "data.use_masks", "model.loss.mask_weight", "model.renderer.background")
"""Fields the trainer sets from the scene (its background colour; `without_masks` for a scene without
masks), so a run's saved config may differ from its preset there."""


def _holds_run(out: Path) -> bool:
    """Whether a folder already holds a run's checkpoints."""
    folder = out / "checkpoints"
    return (folder / "latest.pt").is_file() or bool(step_checkpoints(folder))


def _resume_point(args: TrainArgs) -> tuple[Path, dict] | None:
    """The checkpoint to continue from, loaded and verified: --from-checkpoint, else the newest that loads
    (a damaged latest.pt is skipped, with a line). None when the run has no checkpoint yet."""
    folder = args.out / "checkpoints"
    if args.from_checkpoint is not None:
        path = checkpoint_path(args.out, args.from_checkpoint)
        return path, load_checkpoint(path)
    if not _holds_run(args.out):
        return None
    path, state, problems = load_newest(folder)
    for problem in problems:
        print(
            f"nsr: warning: {problem}; resuming from {path.name} (step {state['step']}) instead",
            file=sys.stderr,
        )
    return path, state


def resumed_config(argv: list[str], args: TrainArgs, resumed: tuple[Path, dict] | None) -> TrainConfig:
    """The config of a resumed run: its own (config.yaml, or the copy in the checkpoint when that file is
    lost), with the flags given on the command line applied where a run can change and refused (one line)
    where they would change the model or the data (`nsr.config.train.RESUME_CHANGEABLE`)."""
    state = resumed[1] if resumed is not None else None
    saved = run_config(args.out, state)
    config = parse(argv, copy.deepcopy(saved)).config
    if _flag_value([ALIASES.get(a, a) for a in argv], "--preset") is not None:
        # A whole command line given again with --resume: its preset must describe this run (but for what
        # the trainer derived from the scene).
        conflicts = [c for c in resume_conflicts(saved, parse(argv).config) if c[0] not in SCENE_DERIVED]
        if conflicts:
            key, old, new = conflicts[0]
            raise ConfigError(
                f"--preset {args.preset}: this run was trained with {flag(key)} {old}, the preset gives {new}; "
                "drop --preset to continue the run with its own config"
            )
    conflicts = resume_conflicts(saved, config)
    if conflicts:
        key, old, new = conflicts[0]
        raise ConfigError(
            f"{flag(key)} {new}: cannot change when resuming (the run was trained with {old}; it changes the "
            "model or the data); start a new run with another --out"
        )
    step = state["step"] if state is not None else 0
    if config.steps != saved.steps and config.steps < step:
        raise ConfigError(
            f"--steps {config.steps}: the run is already at step {step}; give more to extend it"
        )
    for key, old, new in config_changes(saved, config):
        print(f"resuming with {flag(key)} {new} (was {old})")
    return config
