"""`nsr train` with trainable cameras and `nsr eval-cameras`, run as a user would."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import trimesh

SMALL = [
    "--holdout", "4", "--rays-per-batch", "64", "--device", "cpu", "--val-every", "0",
    "--model.sdf.hidden-dim", "48", "--model.sdf.feature-dim", "8", "--model.appearance.hidden-dim", "32",
    "--model.tracer.num-samples", "16", "--model.tracer.mask-samples", "8", "--no-tensorboard",
]  # fmt: skip


def nsr(*args, check=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "nsr.cli.main", *map(str, args)], capture_output=True, text=True, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(f"nsr {args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def test_presets_with_trained_cameras_are_listed():
    out = nsr("train", "--help").stdout
    assert "demo-cams" in out and "positional-cams" in out and "--cameras.lr" in out
    assert "eval-cameras" in nsr("--help").stdout


def test_bad_pose_noise_is_one_clear_line(tiny_scene, tmp_path):
    result = nsr("train", "--data", tiny_scene, "--out", tmp_path / "run", "--preset", "demo-cams",
                 "--pose-noise", "3;0.03", *SMALL, check=False)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pose noise '3;0.03'" in lines[0] and "ROT_DEG,TRANS_FRAC" in lines[0]


def test_train_with_noisy_cameras_then_evaluate_them(tiny_scene, tmp_path):
    run = tmp_path / "run"
    nsr("train", "--data", tiny_scene, "--out", run, "--preset", "demo-cams", "--pose-noise", "3,0.03,1",
        "--steps", "3", "--checkpoint-every", "3", *SMALL)  # fmt: skip
    assert (run / "cameras_gt.npz").is_file() and (run / "cameras_init.npz").is_file()
    result = nsr("eval-cameras", run, "--resolution", "32", "--device", "cpu")  # --gt-mesh: the slow test
    assert "rotation error (deg)" in result.stdout
    report = json.loads((run / "eval_cameras.json").read_text())
    assert report["step"] == 3 and report["views"] == [1, 2, 3, 5, 6, 7]
    for when in ("before", "after"):
        assert {"rotation_deg_mean", "rotation_deg_median", "centre_world_mean", "centre_rel_median"} <= set(
            report[when]
        )
    assert report["world_scale"] == 2.5  # the generated scene's scale_mat
    mesh = trimesh.load(report["mesh_aligned"])
    assert len(mesh.faces) > 0
    # With the hidden pockets filled (none in a field near its initial sphere): nearly the same mesh.
    nsr("eval-cameras", run, "--resolution", "32", "--device", "cpu", "--fill-unseen",
        "--out", tmp_path / "f.json")  # fmt: skip
    filled = trimesh.load(json.loads((tmp_path / "f.json").read_text())["mesh_aligned"])
    assert filled.area == pytest.approx(mesh.area, rel=0.01)
    # In the GT world frame: x_world = 2.5 x + (0.4, -0.3, 1.2) for the generated scene, up to the alignment
    # (near the identity here: the cameras barely moved from their 3-degree noise); inside the bounding sphere.
    to_world = np.array(report["alignment"]["model_to_gt_world"])
    scale_mat = np.diag([2.5, 2.5, 2.5, 1.0])
    scale_mat[:3, 3] = [0.4, -0.3, 1.2]
    np.testing.assert_allclose(to_world, scale_mat, atol=0.4)
    assert np.linalg.norm(mesh.vertices - scale_mat[:3, 3], axis=1).max() < 2.5 * 1.2

    # --icp: the ground truth itself, given as the run's mesh, is mapped by the alignment of these barely moved
    # noisy cameras (off by their noise's average); ICP moves it back onto the ground truth.
    gt_mesh = tiny_scene / "gt_mesh.ply"
    printed = nsr("eval-cameras", run, "--device", "cpu", "--mesh", gt_mesh, "--gt-mesh", gt_mesh, "--icp",
                  "--out", tmp_path / "icp.json").stdout  # fmt: skip
    icp = json.loads((tmp_path / "icp.json").read_text())
    assert "after ICP onto the ground truth" in printed and {"rotation_deg", "shift_rel", "scale"} <= set(
        icp["icp"]
    )
    assert icp["mesh_metrics_icp"]["chamfer_rel"] < 0.8 * icp["mesh_metrics"]["chamfer_rel"]
    assert "--icp" in nsr("eval-cameras", run, "--icp", check=False).stderr  # needs --gt-mesh: one line

    # The same through `nsr eval RUN --cameras`, as one JSON object on stdout.
    result = nsr("eval", run, "--cameras", "--no-mesh", "--device", "cpu", "--json")
    as_json = json.loads(result.stdout)
    assert as_json["after"]["rotation_deg_mean"] == report["after"]["rotation_deg_mean"]

    # Image and geometry metrics of the same run: held-out views in the model's frame, mesh in the GT world.
    # (20k samples a mesh: a 3-step mesh lies far from the GT everywhere, where nearest-neighbour queries are slow)
    result = json.loads(nsr("eval", run, "--device", "cpu", "--json", "--images", "on", "--resolution", "32",
                            "--gt-mesh", tiny_scene / "gt_mesh.ply", "--num-samples", "20000").stdout)  # fmt: skip
    assert "held-out views are rendered at their ground-truth poses" in result["camera_frame"]
    assert result["num_views"] == 2 and np.isfinite(result["psnr"]) and np.isfinite(result["chamfer"])
    # A mesh from `nsr mesh RUN` (the run's world units) is aligned the same way: same metrics.
    nsr("mesh", run, "--resolution", "32", "--out", tmp_path / "run_mesh.ply", "--device", "cpu")
    given = json.loads(nsr("eval", run, "--device", "cpu", "--json", "--mesh", tmp_path / "run_mesh.ply",
                           "--gt-mesh", tiny_scene / "gt_mesh.ply", "--num-samples", "20000").stdout)  # fmt: skip
    assert given["chamfer"] == pytest.approx(result["chamfer"], rel=1e-3)
    # Culled by the scene's masks: dilated by DTU's 12 px scaled to the masks' width unless told otherwise.
    from PIL import Image

    from nsr.metrics.geometry import auto_dilation

    width = Image.open(sorted((tiny_scene / "mask").iterdir())[0]).size[0]
    for extra, dilation in (((), auto_dilation(width)), (("--cull-dilation", "0"), 0)):
        culled = json.loads(nsr("eval", run, "--device", "cpu", "--json", "--mesh", tmp_path / "run_mesh.ply",
                                "--gt-mesh", tiny_scene / "gt_mesh.ply", "--num-samples", "20000",
                                "--cull", "masks", *extra).stdout)  # fmt: skip
        assert culled["cull"] == f"masks (dilation {dilation} px)" and np.isfinite(culled["chamfer"])
    printed = nsr("eval", run, "--device", "cpu", "--mesh", tmp_path / "run_mesh.ply", "--gt-mesh",
                  tiny_scene / "gt_mesh.ply", "--num-samples", "20000", "--cull", "masks").stdout  # fmt: skip
    assert f"culled by the scene's masks (dilation {auto_dilation(width)} px)" in printed

    # A camera path through the run's own (trained) poses.
    nsr("render", run, "--frames", "2", "--device", "cpu", "--out", tmp_path / "orbit")
    assert len(list((tmp_path / "orbit").glob("*.png"))) == 2

    fixed = tmp_path / "fixed"
    nsr("train", "--data", tiny_scene, "--out", fixed, "--preset", "demo", "--steps", "1", *SMALL)
    result = nsr("eval-cameras", fixed, "--no-mesh", check=False)
    assert result.returncode == 1 and "fixed cameras" in result.stderr and "Traceback" not in result.stderr
