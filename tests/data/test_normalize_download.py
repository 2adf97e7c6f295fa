"""Bounding spheres (visual hull, sparse points), pose noise, resumable downloads on loopback."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nsr.cameras.noise import parse_pose_noise, perturb_poses
from nsr.data.download import DownloadError, download, extract_scans
from nsr.data.errors import DataError
from nsr.data.normalize import (
    carve_visual_hull,
    hull_silhouette_iou,
    hull_sphere,
    smallest_enclosing_sphere,
    sphere_from_points,
)
from nsr.scenes.default import look_at


def _sphere_views(centre: np.ndarray, radius: float, num: int = 12, size: int = 48, dirs=None):
    """Masks of an analytic sphere seen by cameras around it (world units; random directions unless
    given), K, c2w."""
    if dirs is None:
        dirs = np.random.default_rng(0).normal(size=(num, 3))
    dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    num = len(dirs)
    focal = size * 1.2
    k = np.array([[focal, 0, (size - 1) / 2], [0, focal, (size - 1) / 2], [0, 0, 1.0]])
    c2w = np.stack([look_at(centre + 4 * radius * d, tuple(centre), (0.3, 0.2, 1.0)) for d in dirs])
    v, u = np.mgrid[0:size, 0:size]
    rays = np.stack([(u - k[0, 2]) / focal, (v - k[1, 2]) / focal, np.ones_like(u, dtype=float)], -1)
    masks = []
    for pose in c2w:
        d = rays @ pose[:3, :3].T
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        oc = pose[:3, 3] - centre
        b = d @ oc
        masks.append(b * b - (oc @ oc - radius * radius) > 0)
    return np.stack(masks), np.repeat(k[None], num, 0), c2w


def test_visual_hull_of_a_sphere_finds_it_and_reprojects_onto_the_masks() -> None:
    centre, radius = np.array([10.0, -3.0, 2.0]), 0.7
    masks, k, c2w = _sphere_views(centre, radius)
    hull = carve_visual_hull(masks, k, c2w, resolution=48)
    sphere = hull.bounding_sphere(margin=1.0)
    np.testing.assert_allclose(sphere.centre, centre, atol=0.08 * radius)  # 12 views: hull bulges
    assert radius <= sphere.radius < 1.25 * radius  # the hull contains the object, and is close to it
    seen = hull_sphere(hull, masks, k, c2w, margin=1.0)  # cameras all round: the same sphere
    np.testing.assert_allclose(seen.centre, centre, atol=0.08 * radius)
    assert radius <= seen.radius < 1.25 * radius
    ious = hull_silhouette_iou(hull, masks, k, c2w)
    assert ious.min() > 0.9
    # A mask that disagrees (another object) lowers that view's IoU only.
    masks[3] = np.roll(masks[3], 12, axis=1)
    hull = carve_visual_hull(masks, k, c2w, resolution=48, max_miss_fraction=0.1)
    ious = hull_silhouette_iou(hull, masks, k, c2w)
    assert np.argmin(ious) == 3 and np.delete(ious, 3).min() > 0.85


def test_one_sided_cameras_centre_the_sphere_on_the_object() -> None:
    """Cameras on one side only (azimuths within +-60 degrees, elevations 10-50: a DTU-like cap) carve a
    hull that runs out behind the object; the sphere is centred on the seen surface, within 10% of the
    object's radius of its true centre, and still contains the whole hull."""
    centre, radius = np.array([1.0, 2.0, -0.5]), 0.5
    azimuth = np.radians(np.tile(np.linspace(-60, 60, 7), 3))
    elevation = np.radians(np.repeat([10.0, 30.0, 50.0], 7))
    dirs = np.stack(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], -1
    )
    masks, k, c2w = _sphere_views(centre, radius, dirs=dirs, size=64)
    hull = carve_visual_hull(masks, k, c2w, resolution=48)
    box = hull.bounding_sphere(margin=1.0)
    assert np.linalg.norm(box.centre - centre) > 0.15 * radius  # the box centre is pulled behind the object
    sphere = hull_sphere(hull, masks, k, c2w, margin=1.0)
    assert np.linalg.norm(sphere.centre - centre) < 0.1 * radius
    assert np.linalg.norm(hull.points() - sphere.centre, axis=1).max() < sphere.radius
    assert (radius / sphere.radius) ** 3 < hull.fill(sphere) < 1  # the hull holds the ball


def test_smallest_enclosing_sphere() -> None:
    rng = np.random.default_rng(1)
    cap = rng.normal(size=(400, 3))
    cap /= np.linalg.norm(cap, axis=1, keepdims=True)
    cap = cap[cap[:, 0] > -0.5]  # more than a hemisphere of a unit sphere: its sphere is the smallest
    sphere = smallest_enclosing_sphere(cap * 2.0 + [3.0, -1.0, 0.5])
    np.testing.assert_allclose(sphere.centre, [3.0, -1.0, 0.5], atol=1e-4)
    assert sphere.radius == pytest.approx(2.0, abs=1e-4)
    segment = smallest_enclosing_sphere(np.array([[0.0, 0, 0], [4, 0, 0], [1, 0.5, 0]]))  # planar, 3 points
    np.testing.assert_allclose(segment.centre, [2, 0, 0], atol=1e-5)
    assert segment.radius == pytest.approx(2.0, abs=1e-5)


def test_visual_hull_errors_name_the_masks() -> None:
    masks, k, c2w = _sphere_views(np.zeros(3), 1.0)
    masks[:6] = np.roll(masks[:6], 20, axis=2)
    masks[:6, :, :20] = False
    with pytest.raises(DataError, match="empty"):
        carve_visual_hull(masks, k, c2w, max_miss_fraction=0.0, path="scene/mask")


def test_sparse_sphere_ignores_outliers_and_short_tracks() -> None:
    rng = np.random.default_rng(0)
    inliers = rng.uniform(-1, 1, size=(500, 3)) + np.array([5.0, 0.0, 0.0])
    outliers = rng.normal(size=(20, 3)) * 100
    points = np.concatenate([inliers, outliers, [[1000, 0, 0]]])
    tracks = np.concatenate([np.full(520, 5), [1]])
    sphere, kept = sphere_from_points(points, tracks, min_track=3, margin=1.0)
    np.testing.assert_allclose(sphere.centre, [5, 0, 0], atol=0.2)
    assert np.sqrt(3) * 0.8 < sphere.radius < np.sqrt(3) * 1.05 and 450 < kept <= 500
    with pytest.raises(DataError, match="only 0 sparse points"):
        sphere_from_points(points, np.ones(len(points)), min_track=3)


def test_pose_noise_has_the_exact_angle_and_translation_fraction() -> None:
    c2w = np.stack([look_at(np.array([3.0, 0.0, i - 1.0]) * (i + 1), (0, 0, 0), (0, 0, 1)) for i in range(4)])
    noisy = perturb_poses(c2w, 2.0, 0.05, seed=7)
    for before, after in zip(c2w, noisy):
        cos = (np.trace(before[:3, :3].T @ after[:3, :3]) - 1) / 2
        np.testing.assert_allclose(np.degrees(np.arccos(cos)), 2.0, atol=1e-6)
        shift = np.linalg.norm(after[:3, 3] - before[:3, 3])
        np.testing.assert_allclose(shift, 0.05 * np.linalg.norm(before[:3, 3]), rtol=1e-9)
        np.testing.assert_allclose(after[:3, :3] @ after[:3, :3].T, np.eye(3), atol=1e-12)
    np.testing.assert_array_equal(noisy, perturb_poses(c2w, 2.0, 0.05, seed=7))
    assert not np.allclose(noisy, perturb_poses(c2w, 2.0, 0.05, seed=8))
    np.testing.assert_allclose(perturb_poses(c2w, 0.0, 0.0), c2w)
    assert parse_pose_noise("2,0.05") == (2.0, 0.05, 0) and parse_pose_noise(" 1.5, 0.1 ,3") == (1.5, 0.1, 3)
    for bad in ("2", "a,b", "1,2,3,4", "-1,0.1", "1,0.1,x"):
        with pytest.raises(ValueError, match="ROT_DEG"):
            parse_pose_noise(bad)


# --- Downloads on a loopback server --------------------------------------------------------------


def _archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for scan in (24, 37):
            zf.writestr(f"DTU/scan{scan}/cameras.npz", b"npz" * 1000 + bytes([scan]))
            zf.writestr(f"DTU/scan{scan}/image/000000.png", bytes(range(256)) * 400)
            zf.writestr(f"DTU/scan{scan}/mask/000.png", b"m" * 5000)
    return buffer.getvalue()


class _Server:
    """http.server on 127.0.0.1 serving one archive, with Range support and an optional cut-off."""

    def __init__(self, payload: bytes) -> None:
        self.payload, self.cut_after, self.requests = payload, None, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.headers.get("Range"))
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header(
                        "Content-Range", f"bytes {start}-{len(outer.payload) - 1}/{len(outer.payload)}"
                    )
                else:
                    self.send_response(200)
                body = outer.payload[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None:
                    self.wfile.write(body[: outer.cut_after])
                    outer.cut_after = None
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/DTU.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_interrupted_download_resumes_with_a_range_request_and_verifies(tmp_path: Path) -> None:
    payload = _archive()
    digest = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "DTU.zip"
    with _Server(payload) as server:
        server.cut_after = 3000
        with pytest.raises(DownloadError, match=r"run .*again to resume"):
            download(server.url, dest, sha256=digest, timeout=5)
        part = tmp_path / "DTU.zip.part"
        assert part.stat().st_size == 3000 and not dest.exists()
        seen = []
        download(
            server.url,
            dest,
            sha256=digest,
            progress=lambda done, total: seen.append((done, total)),
            timeout=5,
        )
        assert server.requests == [None, "bytes=3000-"]
        assert seen[-1] == (len(payload), len(payload))
    assert dest.read_bytes() == payload and not part.exists()
    folders = extract_scans(dest, tmp_path / "out", [37])
    assert folders == [tmp_path / "out" / "scan37"]
    assert (tmp_path / "out" / "scan37" / "mask" / "000.png").read_bytes() == b"m" * 5000
    assert not (tmp_path / "out" / "scan24").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["scan37"]  # no staging folder left
    with pytest.raises(DataError, match="no scan65/"):
        extract_scans(dest, tmp_path / "out", [65])


def test_wrong_checksum_is_refused_and_the_file_deleted(tmp_path: Path) -> None:
    with _Server(_archive()) as server, pytest.raises(DownloadError, match="sha256 mismatch"):
        download(server.url, tmp_path / "DTU.zip", sha256="0" * 64, timeout=5)
    assert not (tmp_path / "DTU.zip").exists() and not (tmp_path / "DTU.zip.part").exists()


def test_unreachable_network_is_one_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a loopback port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match="network unreachable"):
        download(f"http://127.0.0.1:{port}/DTU.zip", tmp_path / "DTU.zip", timeout=2)


def _dtu_scan24_masks(root: Path, reduce: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scan24's masks reduced `reduce` times (box filter), their K, world c2w and the released scale_mat."""
    from PIL import Image

    from nsr.data.normalize import read_world_cameras

    k, c2w, released = read_world_cameras(root / "cameras.npz")
    masks = np.stack(
        [
            np.asarray(Image.open(p).convert("L").reduce(reduce)) > 127
            for p in sorted((root / "mask").glob("*.png"))
        ]
    )
    k[:, :2, :2] /= reduce
    k[:, :2, 2] = (k[:, :2, 2] + 0.5) / reduce - 0.5
    return masks, k, c2w, released


def test_dtu_scan24_sphere_is_near_the_released_one_and_holds_the_hull(shared_data: Path) -> None:
    """DTU scan24 (hemispherical capture): the hull's box centre lies 0.15+ radii from the released
    scale_mat's centre; the sphere centred on the seen surface lies within 0.1 and contains the hull."""
    root = shared_data / "dtu_scan24"
    masks, k, c2w, released = _dtu_scan24_masks(root, 4)  # 200 x 150: a few seconds
    hull = carve_visual_hull(masks, k, c2w, resolution=48)
    centre, radius = released[:3, 3], released[0, 0]
    box = hull.bounding_sphere()
    assert np.linalg.norm(box.centre - centre) > 0.15 * radius
    sphere = hull_sphere(hull, masks, k, c2w)
    assert np.linalg.norm(sphere.centre - centre) < 0.1 * radius
    assert np.linalg.norm(hull.points() - sphere.centre, axis=1).max() < sphere.radius
    assert 0.05 < hull.fill(sphere) < 0.2
