"""fit-sdf library: normalisation, sample pool and its cache, encoding options, a tiny fit."""

import dataclasses

import numpy as np
import pytest
import torch
import trimesh

from nsr.data.errors import DataError
from nsr.fitting.fit_sdf import (
    EvalConfig,
    FitSDFConfig,
    FitSDFError,
    Normalization,
    SDFSamples,
    SDFSamplesConfig,
    cache_path,
    cached_samples,
    encoding_config,
    fit_mesh_sdf,
    load_mesh,
    parse_overrides,
    prepare_samples,
)

TINY = SDFSamplesConfig(num_surface=1000, num_near=2000, num_uniform=1000, num_iou=3000)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def sphere_file(tmp_path):
    """An icosphere of radius 2 centred at (1, 0, 0): normalisation must undo both."""
    path = tmp_path / "sphere.ply"
    trimesh.creation.icosphere(subdivisions=2, radius=2.0).apply_translation([1.0, 0.0, 0.0]).export(path)
    return path


def test_normalisation_puts_the_mesh_in_the_unit_sphere(sphere_file):
    mesh = load_mesh(sphere_file)
    norm = Normalization.of(mesh, 0.9)
    unit = norm.to_unit(mesh.vertices)
    assert np.isclose(np.linalg.norm(unit, axis=1).max(), 0.9)
    back = unit @ norm.to_mesh_matrix()[:3, :3].T + norm.to_mesh_matrix()[:3, 3]
    np.testing.assert_allclose(back, mesh.vertices, atol=1e-12)


def test_pool_ground_truth_and_cache(sphere_file, tmp_path):
    mesh = load_mesh(sphere_file)
    samples = prepare_samples(mesh, TINY, backend="torch")
    assert len(samples.points) == 4000 and len(samples.iou_points) == 3000
    # Sphere of radius 0.9 in normalised units (up to the icosphere's facets).
    radius = np.linalg.norm(samples.points, axis=1)
    assert np.all(np.abs(samples.sdf - (radius - 0.9)) < 0.02)
    assert np.all(samples.sdf[:1000] == 0)  # surface points
    inside = np.linalg.norm(samples.iou_points, axis=1) < 0.9
    clear = np.abs(np.linalg.norm(samples.iou_points, axis=1) - 0.9) > 0.02
    assert np.array_equal(samples.iou_inside[clear], inside[clear])

    cache = tmp_path / "cache"
    first = cached_samples(sphere_file, mesh, TINY, cache, backend="torch")
    assert first.backend == "torch" and cache_path(sphere_file, TINY, cache).is_file()
    again = cached_samples(sphere_file, mesh, TINY, cache, backend="torch")
    assert again.backend == "cache"
    np.testing.assert_array_equal(again.sdf, first.sdf)
    np.testing.assert_array_equal(again.iou_inside, first.iou_inside)
    other = dataclasses.replace(TINY, seed=1)
    assert cache_path(sphere_file, other, cache) != cache_path(sphere_file, TINY, cache)


def test_broken_cache_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a cache")
    with pytest.raises(FitSDFError, match="delete it"):
        SDFSamples.load(bad)


def test_encoding_options():
    config = encoding_config("positional", parse_overrides(["num_frequencies=3", "include_input=true"]))
    assert config.num_frequencies == 3 and config.include_input is True
    with pytest.raises(FitSDFError, match="num_frequencies"):
        encoding_config("positional", {"nope": 1})
    with pytest.raises(FitSDFError, match="choose one of positional"):
        encoding_config("voxels")
    with pytest.raises(FitSDFError, match="view directions"):
        encoding_config("sh")
    with pytest.raises(FitSDFError, match="KEY=VALUE"):
        parse_overrides(["num_frequencies"])


def test_unreadable_and_empty_meshes(tmp_path):
    with pytest.raises(DataError, match=r"missing\.obj: triangle mesh file not found"):
        load_mesh(tmp_path / "missing.obj")
    garbage = tmp_path / "garbage.ply"
    garbage.write_text("hello")
    with pytest.raises(DataError, match=r"garbage\.ply: not a readable triangle mesh"):
        load_mesh(garbage)
    points_only = tmp_path / "points.obj"
    points_only.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(DataError, match="no triangles"):
        load_mesh(points_only)
    flat = tmp_path / "flat.obj"
    flat.write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    with pytest.raises(DataError, match="zero area"):
        load_mesh(flat)


def test_tiny_positional_fit_reaches_a_small_chamfer(sphere_file):
    fit = FitSDFConfig(
        encoding_name="positional", hidden_dim=64, num_layers=3, lr=2e-3, steps=120, batch_size=512
    )
    fit.device = "cpu"
    result, evaluation = fit_mesh_sdf(
        sphere_file, fit, TINY, EvalConfig(resolution=48, num_samples=20000), gt_backend="torch"
    )
    assert result.steps == 120 and result.error is None
    # The field starts as a sphere of radius 0.6 (Chamfer ~4% of the diagonal) and must reach 0.9;
    # the sampling floor of the metric at 20k samples is ~0.36% here.
    assert result.chamfer_rel < 0.006, result
    assert result.iou > 0.97, result
    # Reported in the mesh's units: the fitted surface is a sphere of radius ~2 around (1, 0, 0).
    radii = np.linalg.norm(evaluation.mesh.vertices - [1.0, 0.0, 0.0], axis=1)
    assert abs(radii.mean() - 2.0) < 0.05
    assert result.bbox_diagonal == pytest.approx(np.linalg.norm([4.0, 4.0, 4.0]), rel=0.01)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("encoding", ["positional", "hashgrid", "nffb"])
def test_fit_on_cuda(sphere_file, encoding):
    fit = FitSDFConfig(encoding_name=encoding, steps=300, batch_size=4096, device="cuda")
    result, _ = fit_mesh_sdf(
        sphere_file, fit, TINY, EvalConfig(resolution=64, num_samples=20000), gt_backend="torch"
    )
    assert result.device.startswith("cuda") and result.error is None
    assert result.chamfer_rel < 0.015 and result.iou > 0.93, result  # init sphere: ~4%, IoU 0.6
