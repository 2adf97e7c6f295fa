"""nsr report: one self-contained page; the slow test looks at it in headless Chromium."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from nsr.report.html import ReportInputs, decimate, read_scalars, render_html


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
    assert "<polyline" in page and "30.1235" in page and "n/a" in page
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

    sys.path.insert(0, str(Path(__file__).parent))
    from test_evaluation import make_run

    run = make_run(tiny_scene, tmp_path / "run")
    assert report([str(run), "--device", "cpu", "--resolution", "48"]) == 0
    shot = screenshot(run / "report.html", tmp_path / "shot.png", height=1600)
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # the canvas background is (247, 247, 250); the mesh is shaded grey-blue: look for shaded pixels
    shaded = (np.abs(image[..., 2] - image[..., 0]) > 8) & (image.sum(-1) < 600) & (image.sum(-1) > 150)
    assert shaded.sum() > 2000
