"""`nsr data` and `nsr train --format` from the command line: COLMAP normalisation, DTU download, training."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import tiny_config
from tests.data.test_colmap import _write_capture
from tests.data.test_idr import _make_scene
from tests.data.test_normalize_download import _Server

from nsr.cli.main import main
from nsr.data.formats import load_scene


def test_normalize_colmap_with_points_and_hull_report(tmp_path: Path, capsys) -> None:
    scene = _make_scene()
    scene.intrinsics[:, 0, 1] = 0.0
    _write_capture(tmp_path, scene, binary=True)
    assert main(["data", "normalize", str(tmp_path), "--resolution", "24"]) == 0
    out = capsys.readouterr().out
    assert "sparse points: kept" in out and "IoU mean" in out and "cameras.npz" in out
    with np.load(tmp_path / "cameras.npz") as npz:
        assert len([k for k in npz.files if k.startswith("scale_mat_")]) == 3
        scale = npz["scale_mat_0"]
    loaded = load_scene(tmp_path)  # picks the written scale_mat up
    np.testing.assert_allclose(loaded.scale_mat, scale)
    assert (
        main(
            [
                "data",
                "normalize",
                str(tmp_path),
                "--method",
                "points",
                "--min-track",
                "50",
                "--resolution",
                "24",
            ]
        )
        == 1
    )
    assert "seen by >= 50 images" in capsys.readouterr().err


@pytest.mark.slow
def test_normalize_dtu_scan24_without_its_scale_mat(tmp_path: Path, shared_data: Path, capsys) -> None:
    """`nsr data normalize` at its defaults on scan24's masks and world_mat_i alone: the centre lies within
    10% of the released sphere's radius of its centre, and the report says how much the hull fills."""
    source = shared_data / "dtu_scan24"
    for folder in ("image", "mask"):
        (tmp_path / folder).symlink_to(source / folder)
    with np.load(source / "cameras.npz") as npz:
        released = npz["scale_mat_0"]
        world = {key: npz[key] for key in npz.files if key.startswith("world_mat_") and "inv" not in key}
    np.savez(tmp_path / "cameras.npz", **world)
    assert main(["data", "normalize", str(tmp_path)]) == 0
    assert "of the sphere's volume" in capsys.readouterr().out
    with np.load(tmp_path / "cameras.npz") as npz:
        scale = npz["scale_mat_0"]
    assert np.linalg.norm(scale[:3, 3] - released[:3, 3]) < 0.1 * released[0, 0]


def test_download_cli_fetches_and_extracts_over_loopback(tmp_path: Path, capsys) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("DTU/scan24/cameras.npz", b"x" * 100)
        zf.writestr("DTU/scan37/cameras.npz", b"y" * 100)
    with _Server(buffer.getvalue()) as server:
        assert (
            main(["data", "download", "dtu", "--scans", "24", "--dest", str(tmp_path), "--url", server.url])
            == 0
        )
    assert (tmp_path / "scan24" / "cameras.npz").read_bytes() == b"x" * 100
    assert not (tmp_path / "scan37").exists() and not (tmp_path / "DTU.zip").exists()
    assert "sha256" in capsys.readouterr().out
    url = "http://127.0.0.1:9/DTU.zip"  # discard port: nothing listens
    assert main(["data", "download", "dtu", "--dest", str(tmp_path / "b"), "--url", url]) == 1
    assert "network unreachable" in capsys.readouterr().err


def test_data_command_help_and_unknown_subcommand(capsys) -> None:
    assert main(["data"]) == 0 and "synth" in capsys.readouterr().out
    assert main(["data", "frobnicate"]) == 2


def test_train_reads_a_nerf_synthetic_folder_with_format(tmp_path: Path, tiny_scene: Path) -> None:
    fmt = "nerf-synthetic"
    from nsr.data.blender import write_transforms
    from nsr.data.idr import load_idr_scene

    scene = load_idr_scene(tiny_scene)
    write_transforms(scene, tmp_path / "nerf")
    np.savez(tmp_path / "nerf" / "cameras.npz", **dict(np.load(tiny_scene / "cameras.npz")))
    config = tiny_config(tmp_path / "nerf", steps=2)
    argv = [
        "--data",
        str(tmp_path / "nerf"),
        "--format",
        fmt,
        "--out",
        str(tmp_path / "run"),
        "--preset",
        "demo",
        "--steps",
        "2",
        "--rays-per-batch",
        "64",
        "--device",
        "cpu",
        "--val-every",
        "0",
        "--model.sdf.hidden-dim",
        str(config.model.sdf.hidden_dim),
        "--no-tensorboard",
    ]
    assert main(["train", *argv]) == 0
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()
    assert "format: " + fmt in (tmp_path / "run" / "config.yaml").read_text()
    # The RGBA images were composited on white: the run's config holds the resolved colour (nsr eval uses it).
    from nsr.config import TrainConfig, load_yaml
    from nsr.engine.trainer import CONFIG_KIND

    saved = load_yaml(TrainConfig, tmp_path / "run" / "config.yaml", CONFIG_KIND)
    assert saved.data.background == "auto" and tuple(saved.model.background) == (1.0, 1.0, 1.0)


def test_synth_without_embree_gives_the_install_hint(tmp_path: Path, monkeypatch, capsys) -> None:
    import trimesh

    import nsr.accel.embree

    monkeypatch.setattr(nsr.accel.embree, "has_embree", lambda: False)
    trimesh.creation.box().export(tmp_path / "box.ply")
    assert main(["data", "synth", "--mesh", str(tmp_path / "box.ply"), "--out", str(tmp_path / "o")]) == 1
    assert 'pip install "nsr[synth]"' in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_synth_reports_a_bad_mesh_and_bad_pose_noise(tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.obj").write_text("this is not a mesh\n")
    assert main(["data", "synth", "--mesh", str(tmp_path / "bad.obj"), "--out", str(tmp_path / "o")]) == 1
    assert "bad.obj" in capsys.readouterr().err
    assert main(["data", "synth", "--mesh", "x.obj", "--out", str(tmp_path / "o"), "--pose-noise", "2"]) == 2
    assert "ROT_DEG,TRANS_FRAC" in capsys.readouterr().err


def test_eval_and_render_a_run_trained_from_a_nerf_synthetic_folder(
    tmp_path: Path, tiny_scene: Path, capsys
) -> None:
    """The run records the scene's format; `nsr eval` and `nsr render` read the scene back in it."""
    from nsr.data.blender import write_transforms
    from nsr.data.idr import load_idr_scene

    write_transforms(load_idr_scene(tiny_scene), tmp_path / "nerf")
    run = tmp_path / "run"
    argv = ["--data", str(tmp_path / "nerf"), "--out", str(run), "--preset", "demo", "--steps", "2",
            "--holdout", "4", "--rays-per-batch", "64", "--device", "cpu", "--val-every", "0",
            "--model.sdf.hidden-dim", "48", "--no-tensorboard"]  # fmt: skip
    assert main(["train", *argv]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--json", "--device", "cpu"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["num_views"] == 2 and np.isfinite(result["psnr"])
    assert (
        main(["render", str(run), "--frames", "2", "--out", str(tmp_path / "frames"), "--device", "cpu"]) == 0
    )
    assert len(list((tmp_path / "frames").glob("*.png"))) == 2
