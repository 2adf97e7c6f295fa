"""`nsr`: the command line. One module per subcommand; this one only dispatches."""

from __future__ import annotations

import importlib
import logging
import sys

COMMANDS = {
    "demo": ("nsr.cli.demo", "generate the default scene, train on it, extract and evaluate the mesh"),
    "train": ("nsr.cli.train", "train a model on a scene folder"),
    "mesh": ("nsr.cli.mesh", "extract a mesh (PLY/OBJ/GLB, world units, vertex colours) from a run"),
    "fit-sdf": ("nsr.cli.fit_sdf", "fit an SDF to a mesh with one encoding; Chamfer, IoU, time"),
    "data": ("nsr.cli.data", "bring your own data: normalize, convert, download (DTU), synth (from a mesh)"),
    "eval": ("nsr.cli.eval", "measure a run: image metrics on held-out views, geometry, DTU protocol"),
    "render": ("nsr.cli.render", "render novel views of a run along an orbit or spline (PNG, GIF, MP4)"),
    "transfer": ("nsr.cli.transfer", "render one run's geometry with another run's appearance network"),
    "report": ("nsr.cli.report", "write a self-contained HTML report of a run"),
    "eval-cameras": (
        "nsr.cli.eval_cameras",
        "pose errors of a run's cameras vs the ground truth; aligned mesh",
    ),
    "batch": ("nsr.cli.batch", "many runs from one jobs file (scenes x presets x budgets x seeds), on Ray"),
}


class _Stderr(logging.StreamHandler):
    """A log handler writing to whatever `sys.stderr` is when a record comes (commands redirect it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def usage() -> str:
    lines = ["usage: nsr COMMAND [options]   (nsr COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<8} {text}" for name, (_, text) in COMMANDS.items()]
    lines += [
        "",
        "every command: --threads N   CPU threads of torch (default: OMP_NUM_THREADS if set, else the cores",
        "                             that other processes leave free)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from nsr import __version__

        print(f"nsr {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"nsr: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    # Library modules report choices (e.g. the backend `auto` picked) through `logging`; show them.
    logger = logging.getLogger("nsr")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):  # once, however often main runs
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("nsr: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    from nsr.cli.common import pop_threads, set_threads

    rest, threads = pop_threads(rest)
    if "-h" not in rest and "--help" not in rest:
        set_threads(threads)
    module = importlib.import_module(COMMANDS[name][0])
    return module.run(rest)


if __name__ == "__main__":
    sys.exit(main())
