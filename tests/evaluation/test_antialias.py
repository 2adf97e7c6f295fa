"""Anti-aliased renders, on an analytic sphere whose pixel coverage is known exactly."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from nsr.evaluation.antialias import (
    AntialiasConfig,
    render_camera_antialiased,
    silhouette_pixels,
    subpixel_offsets,
)
from nsr.models import Model, RenderOutputs

RADIUS, DISTANCE, FOCAL, SIZE = 0.5, 3.0, 60.0, 32


class SphereModel(Model):
    """A white sphere of RADIUS at the origin on black, rendered by exact ray-sphere intersection."""

    def __init__(self, soft: bool = False) -> None:
        super().__init__()
        self.config = SimpleNamespace(background=(0.0, 0.0, 0.0))
        self.anchor = nn.Parameter(torch.zeros(1))  # the device the contract reads from the parameters
        self.soft = soft
        self.rays = 0

    @property
    def bounding_radius(self) -> float:
        return 1.0

    def training_loss(self, batch):
        raise NotImplementedError

    def render(self, origins, directions, chunk_size=16384) -> RenderOutputs:
        self.rays += len(origins)
        b = (origins * directions).sum(-1)
        c = (origins * origins).sum(-1) - RADIUS**2
        disc = b * b - c
        hit = disc > 0
        depth = torch.where(hit, -b - disc.clamp(min=0).sqrt(), torch.zeros_like(b))
        # soft: opacity falls off with the ray's distance to the sphere (a volume renderer's soft edge)
        miss = (c - b * b).clamp(min=0).sqrt() - RADIUS
        opacity = torch.sigmoid(-miss / 0.01) if self.soft else hit.float()
        rgb = opacity[:, None].expand(-1, 3).clone()
        normals = torch.zeros_like(origins)
        return RenderOutputs(rgb=rgb, opacity=opacity, depth=depth, normals=normals)


def camera():
    """On the -z axis looking at the sphere: its silhouette is a circle about the image centre."""
    k = np.array([[FOCAL, 0.0, (SIZE - 1) / 2 + 0.23], [0.0, FOCAL, (SIZE - 1) / 2 - 0.17], [0.0, 0.0, 1.0]])
    c2w = np.eye(4)
    c2w[2, 3] = -DISTANCE
    return k, c2w


def exact_coverage(k: np.ndarray) -> np.ndarray:
    """(H, W) area of each pixel square covered by the sphere's silhouette, a circle of radius
    f * R / sqrt(d^2 - R^2) about the principal point, by quadrature of the clipped chords (the error is
    far below the tolerances)."""
    r = FOCAL * RADIUS / math.sqrt(DISTANCE**2 - RADIUS**2)
    cx, cy = k[0, 2], k[1, 2]
    xs = np.linspace(-0.5, 0.5, 4001)
    cover = np.zeros((SIZE, SIZE))
    for row in range(SIZE):
        for col in range(SIZE):
            x = col + xs - cx
            half = np.sqrt(np.clip(r * r - x * x, 0, None))
            lo, hi = row - 0.5 - cy, row + 0.5 - cy
            chord = np.clip(np.minimum(hi, half) - np.maximum(lo, -half), 0, None)
            cover[row, col] = np.trapezoid(chord, xs)
    return cover


@pytest.fixture(scope="module")
def truth():
    k, _ = camera()
    return exact_coverage(k)


def test_subpixel_offsets_are_a_centred_grid():
    offsets = subpixel_offsets(4)
    assert offsets.shape == (16, 2) and torch.allclose(offsets.mean(0), torch.zeros(2))
    assert offsets.min() == pytest.approx(-0.375) and offsets.max() == pytest.approx(0.375)


def test_silhouette_pixels_flag_both_sides_of_an_edge():
    opacity = torch.zeros(5, 6)
    opacity[:, 3:] = 1
    marked = silhouette_pixels(opacity)
    assert marked[:, 2:4].all() and not marked[:, :2].any() and not marked[:, 4:].any()


def test_edge_pixels_get_their_analytic_coverage(truth):
    model = SphereModel()
    k, c2w = camera()
    out = render_camera_antialiased(model, k, c2w, SIZE, SIZE, AntialiasConfig(samples=8))
    coverage = out.antialiased.opacity.reshape(SIZE, SIZE).numpy()
    plain = out.plain.opacity.reshape(SIZE, SIZE).numpy()
    marked = out.supersampled.reshape(SIZE, SIZE).numpy()
    partial = (truth > 1e-3) & (truth < 1 - 1e-3)
    assert partial.sum() > 40 and marked[partial].all()  # every pixel the silhouette crosses
    error = np.abs(coverage - truth)
    # 8 x 8 point samples of a curve: at most ~1/8 off per pixel, a few % on average
    assert error.max() <= 1 / 8 + 1e-6 and error[partial].mean() < 0.03
    assert np.abs(plain - truth)[partial].mean() > 5 * error[partial].mean()  # one ray per pixel
    assert coverage.sum() == pytest.approx(truth.sum(), rel=2e-3)  # the disc's area
    # colour = coverage (white on black); away from the silhouette the plain render is kept as it is
    rgb = out.antialiased.rgb.reshape(SIZE, SIZE, 3).numpy()
    assert np.allclose(rgb, coverage[..., None])
    assert np.array_equal(coverage[~marked], plain[~marked])
    assert model.rays == SIZE * SIZE + 64 * marked.sum()


def test_more_samples_converge(truth):
    model, (k, c2w) = SphereModel(), camera()
    partial = (truth > 1e-3) & (truth < 1 - 1e-3)
    errors = []
    for samples in (2, 4, 16):
        out = render_camera_antialiased(model, k, c2w, SIZE, SIZE, AntialiasConfig(samples=samples))
        errors.append(np.abs(out.antialiased.opacity.reshape(SIZE, SIZE).numpy() - truth)[partial].mean())
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.01


def test_off_and_everywhere(truth):
    model, (k, c2w) = SphereModel(), camera()
    off = render_camera_antialiased(model, k, c2w, SIZE, SIZE, AntialiasConfig(samples=1))
    assert off.antialiased is off.plain and not off.supersampled.any() and model.rays == SIZE * SIZE
    everywhere = render_camera_antialiased(
        model, k, c2w, SIZE, SIZE, AntialiasConfig(samples=2, everywhere=True), chunk_size=100
    )
    assert everywhere.supersampled.all()
    with pytest.raises(ValueError, match="--antialias"):
        AntialiasConfig(samples=0).validate()


def test_soft_silhouettes_are_found_by_opacity():
    """A volume renderer's soft edge: pixels whose opacity changes by more than the threshold are marked
    even where the hit (opacity > 1/2) does not change."""
    model, (k, c2w) = SphereModel(soft=True), camera()
    out = render_camera_antialiased(model, k, c2w, SIZE, SIZE, AntialiasConfig(samples=2, threshold=0.05))
    opacity = out.plain.opacity.reshape(SIZE, SIZE)
    hit_only = silhouette_pixels(opacity, threshold=1.0)
    assert out.supersampled.reshape(SIZE, SIZE).sum() > hit_only.sum()
