"""The IDR loss with fixed shapes (`training_loss(batch, static=True)`, captured whole as a CUDA graph by the
trainer) equals the indexed loss: values, indicators and gradients, for every kind of ray."""

import pytest
import torch

from nsr.encodings import HashGridConfig, PositionalEncodingConfig
from nsr.fields import AppearanceFieldConfig, SDFFieldConfig
from nsr.models import IDRModelConfig, RayBatch
from nsr.renderers import SphereTracerConfig


def model_with(encoding, gradient="analytic"):
    torch.manual_seed(0)
    return IDRModelConfig(
        sdf=SDFFieldConfig(
            hidden_dim=32,
            num_layers=2,
            skip_layers=(),
            feature_dim=8,
            init_radius=0.5,
            encoding=encoding,
            gradient=gradient,
        ),
        appearance=AppearanceFieldConfig(
            hidden_dim=16, num_layers=2, view_encoding=PositionalEncodingConfig(1)
        ),
        # the same tracer for both losses: the static one draws the same random numbers as the compact one
        # would only for the same set of rays
        tracer=SphereTracerConfig(mode="static", num_samples=32, mask_samples=16),
    ).build()


ENCODINGS = {
    "positional": lambda: model_with(PositionalEncodingConfig(num_frequencies=2)),
    "hashgrid-fd": lambda: model_with(
        HashGridConfig(num_levels=4, log2_table_size=10, finest_resolution=32, start_levels=2),
        gradient="finite_difference",
    ),
}


def batch(n=96, camera_gradient=False):
    """Rays towards a sphere of radius 0.5 with every kind of ray: hit inside the mask, hit outside it,
    miss inside it, miss outside it (the mask is the silhouette with a band of rays flipped)."""
    gen = torch.Generator().manual_seed(1)
    origins = torch.tensor([0.0, 0.0, -3.0]).expand(n, 3).clone()
    xy = torch.rand(n, 2, generator=gen) * 0.7 - 0.35
    directions = torch.nn.functional.normalize(torch.cat([xy, torch.ones(n, 1)], -1), dim=-1)
    mask = torch.cross(directions, -origins, dim=-1).norm(dim=-1) < 0.5
    mask[::7] = ~mask[::7]
    if camera_gradient:
        origins.requires_grad_(True)
        directions.requires_grad_(True)
    return RayBatch(origins, directions, torch.rand(n, 3, generator=gen), mask)


def loss_and_grads(model, rays, static):
    model.zero_grad(set_to_none=True)
    for t in (rays.origins, rays.directions):
        t.grad = None
    torch.manual_seed(2)
    out = model.training_loss(rays, static=static)
    out.total.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    for name, t in (("origins", rays.origins), ("directions", rays.directions)):
        if t.grad is not None:
            grads[name] = t.grad.clone()
    return out, grads


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("camera_gradient", [False, True])
def test_static_loss_equals_the_indexed_loss(encoding, camera_gradient):
    model = ENCODINGS[encoding]()
    model.set_progress(0.3)  # a mask alpha past its first milestones
    rays = batch(camera_gradient=camera_gradient)
    trace = model._trace(rays.origins.detach(), rays.directions.detach(), rays.mask, graphed=False)
    kinds = {(bool(h), bool(m)) for h, m in zip(trace.hit, rays.mask)}
    assert kinds == {(True, True), (True, False), (False, True), (False, False)}, "not every kind of ray"

    indexed, indexed_grads = loss_and_grads(model, rays, static=False)
    static, static_grads = loss_and_grads(model, rays, static=True)
    torch.testing.assert_close(static.total, indexed.total, rtol=1e-5, atol=1e-7)
    for name in indexed.terms:
        torch.testing.assert_close(static.terms[name], indexed.terms[name], rtol=1e-5, atol=1e-7)
    for name in indexed.metrics:
        torch.testing.assert_close(
            static.metrics[name].float(), torch.as_tensor(indexed.metrics[name]).float(), rtol=1e-5, atol=1e-6
        )
    torch.testing.assert_close(static.ray_error, indexed.ray_error, rtol=1e-5, atol=1e-6)
    assert static_grads.keys() == indexed_grads.keys()
    assert ("origins" in static_grads) == camera_gradient
    for name, grad in indexed_grads.items():
        torch.testing.assert_close(static_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_static_loss_reads_the_mask_alpha_schedule_from_a_tensor():
    model = ENCODINGS["positional"]()
    alphas = []
    for progress in (0.0, 0.2, 0.9):
        model.set_progress(progress)
        alphas.append(model.training_loss(batch(), static=True).metrics["alpha"].item())
    cfg = model.config.loss
    assert alphas == [cfg.alpha_init * cfg.alpha_factor**k for k in (0, 1, 5)]
