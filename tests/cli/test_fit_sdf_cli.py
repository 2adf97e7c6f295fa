"""`nsr fit-sdf`: JSON report, ground-truth cache, one-line errors (in-process: subprocess start-up is slow)."""

import json

import pytest
import trimesh

from nsr.cli.fit_sdf import format_table
from nsr.cli.main import main
from nsr.fitting.fit_sdf import FitSDFResult

SMALL = [
    "--device", "cpu", "--steps", "30", "--batch-size", "256", "--hidden-dim", "32", "--num-layers", "2",
    "--resolution", "32", "--eval-samples", "5000", "--gt-backend", "torch",
    "--samples.num-surface", "500", "--samples.num-near", "1000", "--samples.num-uniform", "500",
    "--samples.num-iou", "1000",
]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def sphere_file(tmp_path):
    path = tmp_path / "sphere.obj"
    trimesh.creation.icosphere(subdivisions=2, radius=0.5).export(path)
    return path


def test_json_report_and_cache(sphere_file, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(["fit-sdf", str(sphere_file), *SMALL, "--cache", str(cache), "--prepare-only", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gt_backend"] == "torch"
    out = tmp_path / "fit.ply"
    assert (
        main(["fit-sdf", str(sphere_file), *SMALL, "--cache", str(cache), "--json", "--out", str(out)]) == 0
    )
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout holds the JSON object alone; bars go to stderr
    for key in ("chamfer", "chamfer_rel", "iou", "seconds"):
        assert isinstance(report[key], float), key
    assert report["encoding"] == "positional" and report["steps"] == 30
    assert report["gt_backend"] == "cache"  # the prepared ground truth was reused
    assert 0 < report["iou"] <= 1 and report["chamfer_rel"] > 0 and report["seconds"] > 0
    assert report["chamfer"] == pytest.approx(report["chamfer_rel"] * report["bbox_diagonal"])
    assert "fit positional" in captured.err  # the progress bar
    assert len(trimesh.load(out).faces) > 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--encoding", "voxels"], "unknown encoding 'voxels'; choose one of positional"),
        (["--encoding", "sh"], "view directions"),
        (["--encoding-arg", "bogus=1"], "has no option 'bogus'"),
        (["--prepare-only"], "--prepare-only needs --cache"),
    ],
)
def test_bad_options_are_one_line(sphere_file, capsys, args, expected):
    assert main(["fit-sdf", str(sphere_file), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nsr: error:") and expected in err[0]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("mesh.obj", None, "file not found"),
        ("mesh.ply", "hello", "not a readable triangle mesh"),
        ("mesh.obj", "", "empty file"),
        ("mesh.obj", "v 0 0 0\nv 1 0 0\n", "no triangles"),
    ],
)
def test_bad_meshes_are_one_line(tmp_path, capsys, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    assert main(["fit-sdf", str(path), "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and expected in err[0]


def test_table_names_the_numbers():
    result = FitSDFResult(
        mesh="m.obj", encoding="positional", chamfer=0.001, chamfer_rel=0.0025, iou=0.97, seconds=12.0,
        steps=100, fscore=0.9, normal_consistency=0.99, bbox_diagonal=0.4, final_loss=0.01, num_params=10,
        network="2x64", lr=1e-3, batch_size=256, device="cpu", backend=None, gt_backend="cache",
        gt_seconds=0.0, eval_seconds=1.0, resolution=64,
    )  # fmt: skip
    table = format_table(result)
    assert "0.250%" in table and "0.9700" in table and "12.0 s" in table
