"""`nsr train --data DIR --out RUN [--preset NAME] [overrides] [--resume]`."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, get_type_hints

import tyro

from nsr.cli.common import friendly, train_with_progress
from nsr.cli.kinds import apply_kind_switches, union_kinds
from nsr.config import PRESETS, TrainConfig, get_preset, load_yaml
from nsr.config.io import ConfigError
from nsr.config.train import CONFIG_KIND
from nsr.data.background import parse_background
from nsr.data.formats import load_scene
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
    """Continue the run in `out` from its latest checkpoint, with its saved config."""
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


def _run(argv: list[str]) -> int:
    args = parse(argv)
    config = args.config
    saved = args.out / "config.yaml"
    if args.resume and saved.is_file():
        config = load_yaml(TrainConfig, saved, CONFIG_KIND)
    elif saved.is_file() and (args.out / "checkpoints" / "latest.pt").is_file():
        print(f"nsr: error: {args.out} already holds a run; use --resume to continue it", file=sys.stderr)
        return 1
    config.cameras.validate()
    if config.data.path is None:
        print("nsr: error: no scene given (use --data DIR)", file=sys.stderr)
        return 2
    resumed = args.resume and saved.is_file()  # a resumed run keeps the background its config.yaml holds
    if not resumed:
        try:
            parse_background(config.data.background)
        except ValueError as err:
            print(f"nsr: error: --data.background: {err}", file=sys.stderr)
            return 2
    scene = load_scene(
        config.data.path, config.data.format, config.data.downscale, camera_file=config.data.camera_file
    )
    trainer = Trainer(config, scene, args.out)
    train_with_progress(trainer, resume=args.resume)
    print(f"done: {trainer.step} steps in {trainer.seconds:.0f} s of training; run folder {args.out}")
    return 0
