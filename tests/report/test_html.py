"""nsr report: one self-contained page; the slow test looks at it in headless Chromium."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from nsr.report.html import (
    ReportInputs,
    compare_views,
    decimate,
    eval_folders,
    format_number,
    read_scalars,
    render_html,
    run_summary,
)


def test_decimate_keeps_shape_and_bounds_faces():
    sphere = trimesh.creation.icosphere(subdivisions=5)  # 20480 faces
    small = decimate(sphere, 2000)
    assert 0 < len(small.faces) <= 2000
    radii = np.linalg.norm(small.vertices, axis=1)
    assert np.all(np.abs(radii - 1) < 0.03)
    assert decimate(sphere, 10**6) is sphere


def test_page_is_self_contained(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "tb"))
    for step in range(1, 6):
        writer.add_scalar("train/loss", 1.0 / step, step)
    writer.close()
    curves = read_scalars(tmp_path / "tb")
    assert np.allclose(curves["train/loss"][1], [1, 0.5, 1 / 3, 0.25, 0.2])
    page = render_html(
        ReportInputs(
            title="t <run>",
            config_text="a: <b>",
            curves=curves,
            tables=[("summary", {"psnr": 30.123456, "lpips": None})],
            images=[("view", b"\x89PNG fake")],
            mesh=trimesh.creation.box(),
        )
    )
    assert "t &lt;run&gt;" in page and "a: &lt;b&gt;" in page
    assert "<polyline" in page and "30.12" in page and "30.123" not in page and "n/a" in page
    assert "data:image/png;base64," in page and "mesh-data" in page and "webgl2" in page
    # nothing fetched from the network: no external src / href / imports
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "import " not in page


@pytest.mark.slow
def test_report_screenshot_in_chromium(tiny_scene, tmp_path):
    """Look at the page: the WebGL canvas must show a shaded mesh (not blank), curves and tables render."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from report_screenshot import find_chromium, screenshot

    if find_chromium() is None:
        pytest.skip("no chromium")
    from PIL import Image

    from nsr.cli.report import run as report

    sys.path.insert(0, str(Path(__file__).parents[1] / "evaluation"))
    from test_images import make_run

    run = make_run(tiny_scene, tmp_path / "run")
    assert report([str(run), "--device", "cpu", "--resolution", "48"]) == 0
    shot = screenshot(run / "report.html", tmp_path / "shot.png", height=1600)
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # the canvas background is (247, 247, 250); the mesh is shaded grey-blue: look for shaded pixels
    shaded = (np.abs(image[..., 2] - image[..., 0]) > 8) & (image.sum(-1) < 600) & (image.sum(-1) > 150)
    assert shaded.sum() > 2000


def test_numbers_are_rounded():
    assert [format_number(v) for v in (29.73456, 0.952317, 3.0, 200000.0, 1234.567, 1.23456e-5)] == [
        "29.73",
        "0.9523",
        "3",
        "200000",
        "1234.6",
        "1.235e-05",
    ]
    assert format_number(float("nan")) == "n/a"


def _fake_run(root: Path, step: int = 2000) -> Path:
    """A run folder with the files a report reads (no checkpoint, no model)."""
    import json

    from PIL import Image

    run = root
    (run / "eval" / f"step_{step:07d}" / "renders").mkdir(parents=True)
    (run / "eval" / "step_0000100").mkdir()
    (run / "eval" / f"step_{step:07d}_1600x1200").mkdir()
    (run / "config.yaml").write_text(
        "kind: train\nschema_version: 2\nconfig:\n  model:\n    kind: neus\n    sdf:\n      encoding:\n"
        "        kind: hashgrid\n"
    )
    (run / "schedule.json").write_text(json.dumps({"last": [step - 1, 99.95, 1.0, 0.25]}))
    (run / "machine.json").write_text(
        json.dumps([{"from_step": 0, "device": "cuda:0", "name": "NVIDIA H200"}])
    )
    folder = run / "eval" / f"step_{step:07d}"
    images = {
        "psnr": 30.123456,
        "psnr_mask": 25.5,
        "psnr_mask_aa": 27.25,
        "psnr_interior": 28.0,
        "ssim": 0.95,
    }
    images.update(
        {"ssim_mask": 0.9, "lpips": None, "num_views": 6, "split": "test", "resolution": [400, 300]}
    )
    (folder / "summary.json").write_text(json.dumps(images))
    geometry = {"chamfer": 0.0123, "chamfer_rel": 0.00215, "fscore": 0.9312, "threshold_rel": 0.005}
    (folder / "geometry.json").write_text(json.dumps(geometry))
    (run / "eval" / f"step_{step:07d}_1600x1200" / "summary.json").write_text(json.dumps({"psnr": 1.0}))
    cameras = {
        "before": {"rotation_deg_mean": 3.0, "rotation_deg_median": 3.0, "rotation_deg_max": 3.0,
                   "centre_rel_mean": 0.03, "centre_rel_median": 0.03, "centre_rel_max": 0.03, "num_cameras": 42,
                   "num_inliers": 42},
        "after": {"rotation_deg_mean": 0.12, "rotation_deg_median": 0.1, "rotation_deg_max": 0.45,
                  "centre_rel_mean": 0.002, "centre_rel_median": 0.002, "centre_rel_max": 0.006, "num_cameras": 42,
                  "num_inliers": 42},
    }  # fmt: skip
    (run / "eval_cameras.json").write_text(json.dumps(cameras))
    for view, colour in ((0, 50), (8, 100)):
        row = np.concatenate([np.full((4, 4, 3), c, np.uint8) for c in (colour, 200, 30)], axis=1)
        Image.fromarray(row).save(folder / "renders" / f"view_{view:03d}.png")
    return run


def test_summary_says_the_main_numbers_first(tmp_path):
    run = _fake_run(tmp_path / "a")
    assert [p.name for p in eval_folders(run)] == ["step_0002000", "step_0002000_1600x1200"]
    summary = run_summary(run)
    assert summary["model"] == "neus, SDF encoding hashgrid"
    assert summary["training"] == "2000 steps in 100 s (20 it/s)"
    assert summary["device"] == "NVIDIA H200 (cuda:0)"
    assert summary["Chamfer"].startswith("0.215% of the GT diagonal")
    assert summary["F-score"] == "93.1% at 0.5% of the diagonal"
    assert summary["PSNR"].startswith("30.12 dB; in mask 25.50 dB, anti-aliased 27.25 dB, interior 28.00 dB")
    assert "6 test views at 400x300" in summary["PSNR"]  # the default folder's numbers, not 1600x1200's
    assert summary["cameras"] == (
        "rotation 0.12°, max 0.45° (from 3°, max 3°), centre 0.2%, max 0.6% of the distance (from 3%, max 3%), "
        "42 cameras"
    )
    assert list(summary)[:3] == ["model", "training", "device"]


def test_compare_puts_two_runs_beside_the_ground_truth(tmp_path):
    from PIL import Image

    a, b = _fake_run(tmp_path / "a"), _fake_run(tmp_path / "b")
    (b / "eval" / "step_0002000" / "renders" / "view_000.png").unlink()
    figures, note = compare_views(a, b)
    assert len(figures) == 1 and figures[0][0].startswith("view_008: ground truth | a | b")
    import io

    row = np.asarray(Image.open(io.BytesIO(figures[0][1])))
    assert row.shape == (4, 20, 3)
    assert [int(row[0, 4 * i, 0]) for i in range(5)] == [200, 100, 100, 30, 30]  # GT | A | B | errors
    figures, note = compare_views(a, tmp_path / "nothing")
    assert figures == [] and "nsr eval" in note


def test_the_camera_guard_record_is_a_table(tmp_path):
    import json

    from nsr.report.html import collect_run

    run = _fake_run(tmp_path / "a")
    moved = {"view": 1, "step": 400, "progress": 0.2, "score_before": 1.01, "score_after": 0.16,
             "accepted": True, "rotation_deg": 7.17, "centre_moved": 0.143, "candidates": 386}  # fmt: skip
    health = {
        "checks": 12,
        "median": 0.0049,
        "cameras": [
            {"view": 1, "error": 0.004, "z": 0.1, "flagged": False, "recoveries": [moved]},
            {"view": 2, "error": 0.02, "z": 7.0, "flagged": True, "recoveries": []},
        ],
    }
    (run / "cameras_health.json").write_text(json.dumps(health))
    tables = dict(collect_run(run).tables)
    table = tables["camera guard (cameras_health.json)"]
    assert table["checks"] == 12 and table["flagged at the last check"] == "2"
    assert table["view 1 at step 400"] == "score 1.01 -> 0.16: moved 7.17° and 14.3% of its distance"
