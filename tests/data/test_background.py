"""The background colour: parsing `data.background`, detection outside the masks, resolution."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from nsr.cli.main import main
from nsr.data.background import detect_background, parse_background, resolve_background
from nsr.data.blender import write_transforms
from nsr.data.formats import load_scene
from nsr.data.idr import load_idr_scene


def test_parse_background() -> None:
    assert parse_background("auto") is None and parse_background(" Auto ") is None
    assert parse_background("white") == (1.0, 1.0, 1.0) and parse_background("black") == (0.0, 0.0, 0.0)
    assert parse_background("0.5, 0.25,1") == (0.5, 0.25, 1.0)
    for bad in ("", "1,1", "1,1,1,1", "255,255,255", "a,b,c", "grey"):
        with pytest.raises(ValueError, match="R,G,B"):
            parse_background(bad)


def test_generated_black_scene_is_black_and_white_surroundings_are_white(tiny_scene: Path) -> None:
    scene = load_idr_scene(tiny_scene)
    colour, reason = detect_background(scene)
    assert colour == (0.0, 0.0, 0.0) and "uniform" in reason
    scene.images[~scene.masks] = 1.0
    scene.images[:, 0, 0] = 0.4  # a few stray pixels (dust, edges) do not make it non-uniform
    colour, _ = detect_background(scene)
    assert colour == (1.0, 1.0, 1.0)


def test_nerf_synthetic_scene_is_white_by_its_convention(tmp_path: Path, tiny_scene: Path, caplog) -> None:
    scene = load_idr_scene(tiny_scene)  # black outside the masks, but transparent there once written as RGBA
    write_transforms(scene, tmp_path / "nerf")
    np.savez(tmp_path / "nerf" / "cameras.npz", **dict(np.load(tiny_scene / "cameras.npz")))
    loaded = load_scene(tmp_path / "nerf")
    with caplog.at_level(logging.INFO, logger="nsr"):
        colour, reason = resolve_background("auto", loaded)
    assert colour == (1.0, 1.0, 1.0) and "composited" in reason
    assert "background colour (1.000, 1.000, 1.000)" in caplog.text
    assert resolve_background("0,0.5,1", loaded)[0] == (0.0, 0.5, 1.0)  # given beats the convention
    assert resolve_background("auto", load_scene(tmp_path / "nerf", background="black"))[0] == (0, 0, 0)


def test_textured_surroundings_fall_back_to_black_with_the_reason(tiny_scene: Path, caplog) -> None:
    scene = load_idr_scene(tiny_scene)
    rng = np.random.default_rng(0)
    scene.images[~scene.masks] = rng.uniform(size=(int((~scene.masks).sum()), 3))
    assert detect_background(scene)[0] is None
    with caplog.at_level(logging.INFO, logger="nsr"):
        colour, reason = resolve_background("auto", scene)
    assert colour == (0.0, 0.0, 0.0) and "not uniform" in reason and "using black" in reason
    assert "not uniform" in caplog.text
    scene.masks[:] = True  # all object: nothing to look at
    assert detect_background(scene)[0] is None
    scene.has_masks = False
    assert detect_background(scene) == (None, "the scene has no masks")


def test_train_names_the_flag_of_a_bad_background(tmp_path: Path, tiny_scene: Path, capsys) -> None:
    argv = ["train", "--data", str(tiny_scene), "--out", str(tmp_path / "run"), "--preset", "demo"]
    assert main([*argv, "--data.background", "1,2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nsr: error: --data.background 1,2: must be auto, white")
    assert not (tmp_path / "run" / "config.yaml").exists()
