import torch

from nsr.encodings import PositionalEncodingConfig
from nsr.fields import AppearanceFieldConfig, SDFFieldConfig
from nsr.models import IDRModelConfig, RayBatch


def small_model(**kw):
    return IDRModelConfig(
        sdf=SDFFieldConfig(
            hidden_dim=64,
            num_layers=3,
            skip_layers=(2,),
            feature_dim=8,
            init_radius=0.5,
            encoding=PositionalEncodingConfig(num_frequencies=2),
        ),
        appearance=AppearanceFieldConfig(
            hidden_dim=32, num_layers=2, view_encoding=PositionalEncodingConfig(1)
        ),
        **kw,
    ).build()


def rays(n=64):
    o = torch.tensor([0.0, 0.0, -3.0]).expand(n, 3)
    d = torch.nn.functional.normalize(
        torch.cat([torch.rand(n, 2) * 0.5 - 0.25, torch.ones(n, 1)], -1), dim=-1
    )
    return o, d


def test_training_loss_has_all_terms_and_gradients():
    model = small_model()
    o, d = rays()
    mask = torch.cross(d, -o, dim=-1).norm(dim=-1) < 0.45 * 3
    out = model.training_loss(RayBatch(o, d, torch.rand(64, 3), mask))
    assert out.terms["rgb"] > 0 and out.terms["eikonal"] >= 0 and out.terms["mask"] >= 0
    assert set(out.metrics) >= {"psnr", "hit_ratio", "alpha"}
    out.total.backward()
    assert model.sdf_field.layers[0].parametrizations.weight.original1.grad.abs().sum() > 0
    assert model.appearance.layers[0].parametrizations.weight.original1.grad.abs().sum() > 0


def test_render_background_and_hits():
    model = small_model(background=(1.0, 1.0, 1.0))
    o, d = rays()
    model.eval()
    out = model.render(o, d, chunk_size=16)
    assert out.rgb.shape == (64, 3) and out.hit.any()
    assert torch.equal(out.rgb[~out.hit], torch.ones_like(out.rgb[~out.hit]))
    assert torch.allclose(out.normals[out.hit].norm(dim=-1), torch.ones(int(out.hit.sum())), atol=1e-5)
