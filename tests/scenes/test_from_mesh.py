"""`nsr data synth`: mesh scenes with exact masks and cameras; the Spot check against Mitsuba; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from nsr.accel.embree import has_embree
from nsr.cli.main import main
from nsr.data.errors import DataError
from nsr.data.formats import load_scene
from nsr.data.idr import load_idr_scene
from nsr.data.normalize import read_world_cameras

pytestmark = pytest.mark.skipif(not has_embree(), reason='needs embreex (pip install "nsr[synth]")')


@pytest.fixture(scope="module")
def sphere_mesh(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mesh") / "ball.ply"
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=2.0)
    mesh.apply_translation([1.0, 5.0, -2.0])
    mesh.visual.vertex_colors = np.tile([200, 50, 50, 255], (len(mesh.vertices), 1))
    mesh.export(path)
    return path


def test_synth_writes_exact_masks_cameras_and_gt_mesh(tmp_path: Path, sphere_mesh: Path) -> None:
    out = tmp_path / "scene"
    assert (
        main(
            [
                "data",
                "synth",
                "--mesh",
                str(sphere_mesh),
                "--out",
                str(out),
                "--views",
                "6",
                "--res",
                "48",
                "--layout",
                "turntable",
                "--pose-noise",
                "3,0.02,5",
            ]
        )
        == 0
    )
    scene = load_idr_scene(out, camera_file="cameras_gt.npz")
    # The normalised frame puts the mesh's bounding sphere (radius 1.05 x 2, centre (1, 5, -2)) at the unit sphere.
    np.testing.assert_allclose(scene.scale_mat[:3, 3], [1, 5, -2], atol=1e-3)
    np.testing.assert_allclose(scene.scale_mat[0, 0], 2.1, rtol=1e-3)
    # Masks: pixel centres whose rays hit the ball of radius 2 / 2.1 in the normalised frame.
    import torch

    from nsr.cameras.rays import pixel_grid, pixel_rays

    for view in range(scene.num_views):
        o, d = pixel_rays(
            torch.tensor(scene.intrinsics[view]), torch.tensor(scene.c2w[view]), pixel_grid(48, 48).double()
        )
        b = (o * d).sum(-1)
        disc = b * b - ((o * o).sum(-1) - (2 / 2.1) ** 2)
        analytic = (disc > 0).reshape(48, 48).numpy()
        assert (analytic != scene.masks[view]).mean() < 0.02  # the icosphere is a faceted ball
    assert scene.images[scene.masks][:, 0].mean() > 2 * scene.images[scene.masks][:, 1].mean()  # red albedo
    assert np.all(scene.images[~scene.masks] == 1.0)  # white background
    noisy = load_idr_scene(out)
    angles = [
        np.degrees(np.arccos((np.trace(a[:3, :3].T @ b[:3, :3]) - 1) / 2))
        for a, b in zip(scene.c2w, noisy.c2w)
    ]
    np.testing.assert_allclose(angles, 3.0, atol=1e-4)
    gt = trimesh.load(out / "gt_mesh.ply")
    np.testing.assert_allclose(gt.bounds.mean(axis=0), [1, 5, -2], atol=1e-2)
    assert json.loads((out / "scene.json").read_text())["albedo_source"] == "vertex"
    assert main(["data", "synth", "--mesh", str(sphere_mesh), "--out", str(out)]) == 1  # exists: refused


def test_synth_of_spot_matches_the_mitsuba_masks_at_its_cameras(tmp_path: Path, shared_data: Path) -> None:
    k, c2w, scale = read_world_cameras(shared_data / "synthetic_spot_mitsuba" / "cameras.npz")
    views = [0, 13, 29, 41]
    cameras = {}
    for j, i in enumerate(views):
        world = np.eye(4)
        world[:3, :4] = k[i] @ np.linalg.inv(c2w[i])[:3]
        cameras[f"world_mat_{j}"], cameras[f"scale_mat_{j}"] = world, scale
    np.savez(tmp_path / "cams.npz", **cameras)
    out = tmp_path / "spot"
    assert (
        main(
            [
                "data",
                "synth",
                "--mesh",
                str(shared_data / "meshes/spot_cow/cow.obj"),
                "--out",
                str(out),
                "--cameras",
                str(tmp_path / "cams.npz"),
                "--res",
                "400",
            ]
        )
        == 0
    )
    ours = load_idr_scene(out)
    mitsuba = load_idr_scene(shared_data / "synthetic_spot_mitsuba").subset(views)
    iou = (ours.masks & mitsuba.masks).sum((1, 2)) / (ours.masks | mitsuba.masks).sum((1, 2))
    assert iou.min() > 0.995, iou
    np.testing.assert_allclose(ours.c2w, mitsuba.c2w, atol=1e-9)
    # Same texture: the dark spots of the cow are dark in both (lighting differs: Mitsuba used an
    # environment light, synth a key light + ambient).
    both = ours.masks & mitsuba.masks
    grey_ours, grey_mitsuba = ours.images[both].mean(-1), mitsuba.images[both].mean(-1)
    assert np.corrcoef(grey_ours, grey_mitsuba)[0, 1] > 0.5


def test_convert_and_normalize_cli_on_a_nerf_synthetic_scene(tmp_path: Path, sphere_mesh: Path) -> None:
    from nsr.data.blender import write_transforms

    main(
        [
            "data",
            "synth",
            "--mesh",
            str(sphere_mesh),
            "--out",
            str(tmp_path / "s"),
            "--views",
            "8",
            "--res",
            "32",
            "--no-shadows",
        ]
    )
    scene = load_idr_scene(tmp_path / "s")
    write_transforms(scene, tmp_path / "nerf")
    assert main(["data", "normalize", str(tmp_path / "nerf"), "--resolution", "48"]) == 0
    normalised = load_scene(tmp_path / "nerf")  # uses the written cameras.npz scale_mat
    np.testing.assert_allclose(normalised.scale_mat[:3, 3], [1, 5, -2], atol=0.15)
    assert 2.0 < normalised.scale_mat[0, 0] < 2.8
    assert main(["data", "convert", str(tmp_path / "nerf"), "--out", str(tmp_path / "idr")]) == 0
    converted = load_idr_scene(tmp_path / "idr")
    np.testing.assert_allclose(converted.c2w, normalised.c2w, atol=1e-6)
    np.testing.assert_array_equal(converted.masks, scene.masks)
    assert main(["data", "convert", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 1


def test_normalize_an_idr_folder_without_scale_mats(tmp_path: Path, sphere_mesh: Path) -> None:
    out = tmp_path / "s"
    main(["data", "synth", "--mesh", str(sphere_mesh), "--out", str(out), "--views", "10", "--res", "40"])
    with np.load(out / "cameras.npz") as npz:
        world_only = {k: npz[k] for k in npz.files if k.startswith("world_mat_")}
    np.savez(out / "cameras.npz", **world_only)
    with pytest.raises(DataError, match="missing key scale_mat_0") as caught:
        load_idr_scene(out)
    assert "nsr data normalize" in caught.value.hint
    assert main(["data", "normalize", str(out), "--resolution", "48", "--margin", "1.0"]) == 0
    assert (out / "cameras.npz.bak").is_file()
    scene = load_idr_scene(out)
    np.testing.assert_allclose(scene.scale_mat[:3, 3], [1, 5, -2], atol=0.1)
    assert 2.0 <= scene.scale_mat[0, 0] < 2.4  # the ball's radius is 2; the hull of 10 views is a bit larger
    with np.load(out / "cameras.npz") as npz:
        np.testing.assert_array_equal(npz["world_mat_3"], world_only["world_mat_3"])  # kept as they were


def _synth(mesh: Path, out: Path, *extra: str) -> int:
    args = ["data", "synth", "--mesh", str(mesh), "--out", str(out), "--views", "4", "--res", "32"]
    return main([*args, "--layout", "turntable", *extra])


@pytest.mark.parametrize("backdrop", ["plane", "room"])
def test_backdrop_scene_has_textured_surroundings_and_the_same_object(
    tmp_path: Path, sphere_mesh: Path, backdrop: str
) -> None:
    assert _synth(sphere_mesh, tmp_path / "plain") == 0
    assert _synth(sphere_mesh, tmp_path / "bd", "--backdrop", backdrop) == 0
    plain, scene = load_idr_scene(tmp_path / "plain"), load_idr_scene(tmp_path / "bd")
    # Cameras, masks, the object's pixels and the GT mesh are those of the scene without a backdrop.
    np.testing.assert_allclose(scene.c2w, plain.c2w, atol=1e-12)
    np.testing.assert_allclose(scene.scale_mat, plain.scale_mat)
    np.testing.assert_array_equal(scene.masks, plain.masks)
    np.testing.assert_array_equal(scene.images[scene.masks], plain.images[plain.masks])
    gt, gt_plain = (
        trimesh.load(tmp_path / "bd" / "gt_mesh.ply"),
        trimesh.load(tmp_path / "plain" / "gt_mesh.ply"),
    )
    np.testing.assert_array_equal(gt.vertices, gt_plain.vertices)
    for view in range(scene.num_views):
        outside = scene.images[view][~scene.masks[view]]
        # Not a background colour: a colour threshold finds no mask, the surroundings are textured.
        not_white = np.any(scene.images[view] < 1.0, axis=-1)
        assert (not_white != scene.masks[view]).mean() > 0.3
        assert outside.std(axis=0).mean() > 0.05
        assert len(np.unique(np.round(outside * 255), axis=0)) > 0.3 * len(outside)
    # A uniform background is found around the plain scene, none around the backdrop (black is used).
    from nsr.data.background import detect_background, resolve_background

    assert detect_background(plain)[0] == (1.0, 1.0, 1.0)
    assert detect_background(scene)[0] is None
    colour, reason = resolve_background("auto", scene)
    assert colour == (0.0, 0.0, 0.0) and "not uniform" in reason
    layout = json.loads((tmp_path / "bd" / "scene.json").read_text())["backdrop"]
    assert layout["kind"] == backdrop and layout["extent"] >= 2.0


@pytest.mark.parametrize("kind", ["plane", "room"])
def test_backdrop_lies_outside_the_unit_sphere_but_for_the_ground_below_the_object(kind: str) -> None:
    from nsr.scenes.backdrop import backdrop_hits, backdrop_layout

    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(200, 3))
    vertices *= 0.9 / np.linalg.norm(vertices, axis=1, keepdims=True).max()  # inside the unit sphere
    scale_mat = np.diag([2.0, 2.0, 2.0, 1.0])
    scale_mat[:3, 3] = [1.0, -1.0, 3.0]
    world = vertices * 2.0 + scale_mat[:3, 3]
    up = np.array([0.0, 0.0, 1.0])
    eyes = scale_mat[:3, 3] + 2.0 * np.array([[3.0, 0.0, 1.0], [0.0, -3.0, 2.0], [-2.0, 2.0, 0.5]])
    layout = backdrop_layout(kind, world, scale_mat, up, eyes)
    assert layout.ground == pytest.approx(vertices[:, 2].min() - 0.002)
    dirs = rng.normal(size=(3000, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    for eye in eyes:
        points, surface = backdrop_hits(layout, eye, dirs)
        assert np.all(np.isfinite(points))  # every ray meets the backdrop
        inside = np.linalg.norm(points, axis=1) < 1.0
        assert np.all(surface[inside] == 0) and np.all(points[inside, 1] < vertices[:, 2].min())
        assert np.all(np.linalg.norm(points[surface != 0], axis=1) > 1.0)
    with pytest.raises(DataError, match="below the ground"):
        backdrop_layout(kind, world, scale_mat, up, np.array([[1.0, -1.0, 0.0]]))


def test_synth_progress_counts_rendering_then_writing(tmp_path: Path, sphere_mesh: Path) -> None:
    from nsr.scenes.from_mesh import SynthConfig, write_mesh_scene

    calls = []
    config = SynthConfig(views=3, resolution=16, layout="turntable")
    write_mesh_scene(sphere_mesh, tmp_path / "s", config, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 6) for i in range(1, 7)]


def test_backdrop_refuses_cameras_below_the_ground(tmp_path: Path, sphere_mesh: Path, capsys) -> None:
    assert _synth(sphere_mesh, tmp_path / "s", "--backdrop", "room", "--elevation", "-40") == 1
    err = capsys.readouterr().err
    assert err.startswith("nsr: error:") and "below the ground" in err and len(err.strip().splitlines()) == 1
