"""nsr eval / render / transfer on run folders made without training (models set up by hand)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import make_run, tiny_config
from nsr.data.idr import load_idr_scene
from nsr.engine.trainer import Trainer


@pytest.fixture(scope="module")
def run_folder(tiny_scene, tmp_path_factory):
    return make_run(tiny_scene, tmp_path_factory.mktemp("runs") / "a", colour=(0.2, 0.3, 0.9))


def call(module, argv, capsys):
    import importlib

    code = importlib.import_module(f"nsr.cli.{module}").run([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_images_on_held_out_views(run_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))  # no LPIPS weights
    out = tmp_path / "eval"
    code, stdout, stderr = call("eval", [run_folder, "--device", "cpu", "--out", out, "--json"], capsys)
    assert code == 0, stderr
    result = json.loads(stdout)
    split = json.loads((run_folder / "split.json").read_text())
    assert result["views"] == split["test"] and result["num_views"] == len(split["test"])
    assert result["lpips"] is None and "LPIPS unavailable" in stderr
    assert np.isfinite(result["psnr"]) and 0 < result["ssim"] <= 1
    rows = (out / "views.csv").read_text().strip().splitlines()
    assert rows[0].startswith("view,name,psnr,psnr_mask,ssim,ssim_mask,lpips") and len(rows) == 1 + len(
        split["test"]
    )
    assert (out / "metrics.png").is_file() and (out / "summary.json").is_file()
    from PIL import Image

    row = np.asarray(Image.open(out / "renders" / f"view_{split['test'][0]:03d}.png"))
    assert row.shape == (32, 96, 3)  # render (anti-aliased) | ground truth | error map
    # The model's constant colour is what the render shows where it hits (silhouette pixels: mixed with
    # the black background by their coverage).
    render = row[:, :32].reshape(-1, 3).astype(float)
    colour = np.array([0.2, 0.3, 0.9]) * 255
    hit = np.any(render != 0, axis=1)
    assert hit.any() and np.allclose(np.median(render[hit], axis=0), colour, atol=2)
    mixed = hit & (render[:, 2] < colour[2] - 3)
    assert mixed.any() and np.allclose(render[mixed] / render[mixed, 2:], colour / colour[2], atol=0.1)
    # PSNR agrees with a direct computation on the saved ground truth (of the anti-aliased render)
    header = rows[0].split(",")
    first = dict(zip(header, next(r for r in rows[1:] if r.startswith(f"{split['test'][0]},")).split(",")))
    gt = row[:, 32:64].astype(float) / 255
    mse = np.mean((row[:, :32].astype(float) / 255 - gt) ** 2)
    assert float(first["psnr_aa"]) == pytest.approx(-10 * np.log10(mse), abs=0.05)
    assert 0 < float(first["supersampled"]) < 0.5
    for key in ("psnr_mask_aa", "psnr_interior"):
        assert np.isfinite(result[key])
    assert result["resolution"] == [32, 32] and result["downscale"] == 1 and result["antialias_samples"] == 4


def test_eval_at_another_resolution(run_folder, tmp_path, capsys, monkeypatch):
    """`--downscale 2` renders and compares at half the training resolution; a bad value is one clear line."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    out = tmp_path / "eval"
    code, _, stderr = call("eval", [run_folder, "--device", "cpu", "--out", out, "--downscale", "2"], capsys)
    assert code == 0, stderr
    from PIL import Image

    test_view = json.loads((run_folder / "split.json").read_text())["test"][0]
    assert np.asarray(Image.open(out / "renders" / f"view_{test_view:03d}.png")).shape == (16, 48, 3)
    code, _, stderr = call("eval", [run_folder, "--device", "cpu", "--downscale", "0"], capsys)
    assert code == 1 and "--downscale 0: must be >= 1" in stderr and "Traceback" not in stderr


def test_eval_folders_keep_each_resolution_and_split(run_folder, tmp_path, capsys, monkeypatch):
    """`--downscale 2` and `--split train` write beside the default evaluation, never over it; summary.json
    says at which resolution it measured."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    run = tmp_path / "run"
    shutil.copytree(run_folder, run)
    for extra in ([], ["--downscale", "2"], ["--split", "train", "--antialias", "1"], ["--downscale", "1"]):
        code, _, stderr = call("eval", [run, "--device", "cpu", *extra], capsys)
        assert code == 0, stderr
    folders = sorted(p.name for p in (run / "eval").iterdir())
    assert folders == ["step_0000000", "step_0000000_16x16", "step_0000000_train"]
    default = json.loads((run / "eval" / "step_0000000" / "summary.json").read_text())
    half = json.loads((run / "eval" / "step_0000000_16x16" / "summary.json").read_text())
    train = json.loads((run / "eval" / "step_0000000_train" / "summary.json").read_text())
    assert default["resolution"] == [32, 32] and half["resolution"] == [16, 16] and half["downscale"] == 2
    assert train["split"] == "train" and train["psnr_aa"] is None and train["antialias_samples"] == 1
    code, _, stderr = call("eval", [run, "--device", "cpu", "--antialias", "0"], capsys)
    assert code == 1 and "--antialias" in stderr and len(stderr.strip().splitlines()) == 1


def test_eval_geometry_json_keys(run_folder, tiny_scene, tmp_path, capsys):
    argv = [run_folder, "--gt-mesh", tiny_scene / "gt_mesh.ply", "--json", "--device", "cpu"]
    argv += ["--resolution", "32", "--num-samples", "4000", "--out", tmp_path]
    code, stdout, stderr = call("eval", argv, capsys)
    assert code == 0, stderr
    result = json.loads(stdout)
    for key in ("chamfer", "accuracy", "completeness", "fscore", "normal_consistency"):
        assert np.isfinite(result[key]) and np.isfinite(result.get(f"{key}_rel", 0.0))
    assert result["chamfer_rel"] == pytest.approx(result["chamfer"] / result["bbox_diagonal"])
    assert "psnr" not in result  # images only when asked, once a geometry reference is given
    culled = call("eval", [*argv, "--mesh", tmp_path / "mesh_0000000.ply", "--cull", "masks"], capsys)
    assert json.loads(culled[1])["num_gt_points"] < 4000


def test_eval_needs_the_scene_or_data(run_folder, tiny_scene, tmp_path, capsys):
    moved = tmp_path / "copied_run"
    shutil.copytree(run_folder, moved)
    info = json.loads((moved / "scene.json").read_text())
    info["root"] = info["root_resolved"] = str(tmp_path / "elsewhere" / "scene")
    (moved / "scene.json").write_text(json.dumps(info))
    cfg = (moved / "config.yaml").read_text().replace(str(tiny_scene), str(tmp_path / "elsewhere" / "scene"))
    (moved / "config.yaml").write_text(cfg)
    code, _, stderr = call("eval", [moved, "--device", "cpu"], capsys)
    assert code == 1 and "--data" in stderr and len(stderr.strip().splitlines()) == 1
    gt = tiny_scene / "gt_mesh.ply"
    argv = [moved, "--device", "cpu", "--data", tiny_scene, "--gt-mesh", gt, "--mesh", gt, "--cull", "masks"]
    code, _, stderr = call("eval", [*argv, "--num-samples", "2000", "--out", tmp_path / "e"], capsys)
    assert code == 0, stderr  # the masks of the scene given with --data were used
    assert 0 < json.loads((tmp_path / "e" / "geometry.json").read_text())["num_gt_points"] < 2000
    code, _, stderr = call("eval", [moved, "--dtu-gt", tmp_path, "--scan", "24", "--mesh", "x.ply"], capsys)
    assert code == 1 and "stl024_total.ply" in stderr


def test_render_orbit_writes_frames_and_gif(run_folder, tmp_path, capsys):
    code, stdout, stderr = call(
        "render",
        [run_folder, "--frames", "3", "--downscale", "4", "--out", tmp_path, "--device", "cpu"],
        capsys,
    )
    assert code == 0, stderr
    assert sorted(p.name for p in tmp_path.glob("frame_*.png")) == [f"frame_{i:04d}.png" for i in range(3)]
    from PIL import Image

    gif = Image.open(tmp_path / "video.gif")
    assert gif.n_frames == 3 and gif.size == (8, 8)
    assert "video.gif" in stdout


def test_transfer_takes_colours_from_b_and_silhouettes_from_a(tiny_scene, tmp_path, capsys):
    from nsr.engine.run import open_run
    from nsr.evaluation.novel_views import camera_path, render_path, transfer_model

    a = make_run(tiny_scene, tmp_path / "a", radius=0.6, colour=(0.1, 0.2, 0.9))  # big blue sphere
    b = make_run(tiny_scene, tmp_path / "b", radius=0.3, colour=(0.9, 0.3, 0.1))  # small orange sphere
    out = tmp_path / "transfer"
    argv = [
        "--geometry",
        a,
        "--appearance",
        b,
        "--out",
        out,
        "--frames",
        "2",
        "--downscale",
        "2",
        "--device",
        "cpu",
    ]
    code, _, stderr = call("transfer", argv, capsys)
    assert code == 0, stderr
    run_a, run_b = open_run(a, device="cpu"), open_run(b, device="cpu")
    path = camera_path(load_idr_scene(tiny_scene), run_a.train_views, "orbit", 2, 2.0)
    (fa,), (ha,) = (x[:1] for x in render_path(run_a.model, path))
    (fb,), (hb,) = (x[:1] for x in render_path(run_b.model, path))
    (ft,), (ht,) = (x[:1] for x in render_path(transfer_model(run_a, run_b), path))
    iou = (ha & ht).sum() / (ha | ht).sum()
    assert iou > 0.99  # A's silhouette
    # medians: the anti-aliased silhouette pixels mix the colour with the background
    mean_t, mean_a, mean_b = (np.median(f[h], axis=0) for f, h in ((ft, ht), (fa, ha), (fb, hb)))
    assert np.linalg.norm(mean_t - mean_b) < 0.05 < np.linalg.norm(mean_t - mean_a)  # B's colours
    from PIL import Image

    saved = np.asarray(Image.open(out / "frame_0000.png")).astype(float) / 255
    assert np.abs(saved - ft).max() < 1 / 255 + 1e-6


def test_transfer_refuses_incompatible_runs(tiny_scene, tmp_path, capsys):
    a = make_run(tiny_scene, tmp_path / "a", feature_dim=8)
    b = make_run(tiny_scene, tmp_path / "b", feature_dim=4)
    capsys.readouterr()  # what training the two runs logged
    code, _, stderr = call(
        "transfer", ["--geometry", a, "--appearance", b, "--out", tmp_path / "o", "--device", "cpu"], capsys
    )
    assert code == 1 and "feature" in stderr and len(stderr.strip().splitlines()) == 1


def test_eval_dtu_section_end_to_end(run_folder, tiny_scene, tmp_path, capsys):
    """The DTU files written in the official formats from the scene's own GT mesh: the mesh scores ~0."""
    import scipy.io
    import trimesh

    from nsr.metrics.geometry import sample_surface

    gt_mesh = trimesh.load(tiny_scene / "gt_mesh.ply")
    points = sample_surface(gt_mesh, 100_000, seed=1)[0]
    lo, hi = points.min(0), points.max(0)
    res = float((hi - lo).max() / 20)
    shape = tuple(int(n) for n in np.ceil((hi - lo) / res) + 1)
    root = tmp_path / "dtu"
    (root / "Points" / "stl").mkdir(parents=True)
    (root / "ObsMask").mkdir()
    trimesh.PointCloud(points).export(root / "Points" / "stl" / "stl024_total.ply")
    obs = {"ObsMask": np.ones(shape, bool), "BB": np.stack([lo, hi]), "Res": res}
    scipy.io.savemat(root / "ObsMask" / "ObsMask24_10.mat", obs)
    scipy.io.savemat(root / "ObsMask" / "Plane24.mat", {"P": np.array([0, 0, 0, 1.0])})  # all above
    argv = [run_folder, "--dtu-gt", root, "--scan", "24", "--mesh", tiny_scene / "gt_mesh.ply", "--json"]
    code, stdout, stderr = call("eval", [*argv, "--dtu-density", "0.04", "--out", tmp_path / "e"], capsys)
    assert code == 0, stderr
    result = json.loads(stdout)
    diagonal = float(np.linalg.norm(hi - lo))
    assert result["dtu_accuracy"] < 0.01 * diagonal and result["dtu_completeness"] < 0.01 * diagonal
    assert (tmp_path / "e" / "vis_024_d2s.ply").is_file() and (tmp_path / "e" / "vis_024_s2d.ply").is_file()


@pytest.mark.slow
def test_transfer_between_trained_runs_of_two_textures(tiny_scene, tmp_path, capsys):
    """Two short trainings: A on the tiny scene, B on the same views with red and blue swapped (another
    texture). Transferred frames must take B's colours and A's silhouette."""
    from PIL import Image

    from nsr.engine.run import open_run
    from nsr.evaluation.novel_views import camera_path, render_path, transfer_model

    scene_b = tmp_path / "scene_b"
    shutil.copytree(tiny_scene, scene_b)
    for png in (scene_b / "image").glob("*.png"):
        rgb = np.asarray(Image.open(png).convert("RGB"))
        Image.fromarray(np.ascontiguousarray(rgb[..., ::-1])).save(png)
    runs = []
    for name, scene in (("a", tiny_scene), ("b", scene_b)):
        config = tiny_config(scene, steps=300)
        config.val_every = 0
        config.tensorboard = False
        trainer = Trainer(config, load_idr_scene(scene), tmp_path / name)
        trainer.train()
        runs.append(open_run(tmp_path / name, device="cpu"))
    run_a, run_b = runs
    path = camera_path(load_idr_scene(tiny_scene), run_a.train_views, "orbit", 3)
    fa, ha = render_path(run_a.model, path)
    fb, hb = render_path(run_b.model, path)
    ft, ht = render_path(transfer_model(run_a, run_b), path)
    for a, b, t, mask_a, mask_b, mask_t in zip(fa, fb, ft, ha, hb, ht):
        assert np.array_equal(mask_a, mask_t)  # the surface is A's
        both = mask_a & mask_b
        mean_a, mean_b, mean_t = a[both].mean(0), b[both].mean(0), t[both].mean(0)
        assert np.linalg.norm(mean_t - mean_b) < 0.5 * np.linalg.norm(mean_t - mean_a)


def test_report_compares_two_runs(run_folder, tiny_scene, tmp_path, capsys, monkeypatch):
    """`nsr report A --compare B`: both summaries, and each held-out view as GT | A | B | errors."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    a, b = tmp_path / "a", make_run(tiny_scene, tmp_path / "b", radius=0.4, colour=(0.9, 0.3, 0.1))
    shutil.copytree(run_folder, a)
    out = tmp_path / "page.html"
    argv = [a, "--compare", b, "--device", "cpu", "--resolution", "16", "--out", out]
    assert call("report", argv, capsys)[0] == 0
    assert "has no evaluated renders: run `nsr eval" in out.read_text()
    for run in (a, b):
        assert call("eval", [run, "--device", "cpu", "--antialias", "2"], capsys)[0] == 0
    code, _, stderr = call("report", argv, capsys)
    assert code == 0, stderr
    page = out.read_text()
    assert "Held-out views side by side" in page and "view_000: ground truth | a | b" in page
    assert "No evaluation yet" not in page and page.count("anti-aliased") >= 2  # both summaries


def test_report_measures_trained_cameras(tiny_scene, tmp_path, capsys):
    """A run whose cameras started from noise: the report shows how far they are from the ground truth."""
    config = tiny_config(tiny_scene)
    config.cameras.pose_noise = "3,0.03,1"
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "run")
    trainer.prepare_run_dir()
    trainer.save_checkpoint()
    code, _, stderr = call("report", [tmp_path / "run", "--device", "cpu", "--resolution", "16"], capsys)
    assert code == 0, stderr
    page = (tmp_path / "run" / "report.html").read_text()
    assert "rotation (deg) before: mean" in page and "of the distance" in page


def test_a_run_finds_its_scene_from_another_folder(run_folder, tiny_scene, tmp_path, monkeypatch):
    """scene.json keeps the scene folder as given to `nsr train` (relative paths travel with a run) and as
    resolved where it ran, so `nsr eval RUN` works from any folder of that machine."""
    from nsr.engine.run import open_run
    from nsr.evaluation.images import scene_root

    info = json.loads((run_folder / "scene.json").read_text())
    assert info["root_resolved"] == str(tiny_scene.resolve())
    moved = tmp_path / "copied_run"
    shutil.copytree(run_folder, moved)
    info["root"] = "relative/to/where/it/ran"
    (moved / "scene.json").write_text(json.dumps(info))
    monkeypatch.chdir(tmp_path)
    assert scene_root(open_run(moved, device="cpu"), None) == tiny_scene.resolve()
    info["root_resolved"] = str(tmp_path / "gone")
    (moved / "scene.json").write_text(json.dumps(info))
    with pytest.raises(Exception, match="--data"):
        scene_root(open_run(moved, device="cpu"), None)
