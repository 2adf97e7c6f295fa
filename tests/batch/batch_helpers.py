"""Batch test helpers: tiny scenes (copies of the session's tiny generated scene) and jobs files.

(A plain module, not a conftest.py: a second conftest would shadow the `from conftest import ...` of the
other test folders.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

TINY = {
    "presets": ["demo"],
    "seeds": [0],
    "steps": 4,
    "holdout": 4,
    "device": "cpu",
    "mesh_resolution": 24,
    "geometry_samples": 2000,
    "overrides": {
        # tests/conftest.py `tiny_config`, as jobs-file overrides
        "rays_per_batch": 64,
        "checkpoint_every": 2,
        "val_every": 0,
        "tensorboard": False,
        "model.sdf.hidden_dim": 48,
        "model.sdf.feature_dim": 8,
        "model.appearance.hidden_dim": 32,
        "model.tracer.num_samples": 16,
        "model.tracer.mask_samples": 8,
    },
}


def write_jobs(path: Path, **keys) -> Path:
    """A jobs file with the tiny settings above, updated by `keys` (a key set to None is left out)."""
    data = {**TINY, **keys}
    data["overrides"] = {**TINY["overrides"], **keys.get("overrides", {})}
    data = {k: v for k, v in data.items() if v is not None}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def copy_scenes(tiny_scene: Path, root: Path, names: str = "abc") -> list[Path]:
    """Copies of the tiny generated scene (8 views of 32x32, gt_mesh.ply) as root/<name>."""
    out = []
    for name in names:
        target = root / name
        if not target.is_dir():
            shutil.copytree(tiny_scene, target)
        out.append(target)
    return out


def broken_scene(tiny_scene: Path, root: Path) -> Path:
    """The tiny scene without its cameras.npz."""
    path = root / "broken"
    if not path.is_dir():
        shutil.copytree(tiny_scene, path)
        (path / "cameras.npz").unlink()
    return path


def make_scenes(tiny_scene: Path, tmp_path_factory) -> Path:
    """root/a, root/b, root/c: three copies of the tiny scene; root/broken: one without cameras."""
    root = tmp_path_factory.mktemp("batch_scenes")
    copy_scenes(tiny_scene, root)
    broken_scene(tiny_scene, root)
    return root
