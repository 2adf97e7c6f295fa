"""The training step captured whole as a CUDA graph (`cuda_graph_step`): the same training as ordinary
steps on a GPU; ordinary steps (and a saved reason) where it does not apply; checkpoints that resume
anywhere."""

import pytest
import torch
from tests.conftest import tiny_config

from nsr.config import get_preset
from nsr.data.idr import load_idr_scene
from nsr.encodings import HashGridConfig
from nsr.engine.graph_step import (
    GraphedStep,
    portable_optimizer_state,
    set_learning_rate,
    tensor_learning_rates,
)
from nsr.engine.trainer import Trainer


def test_ordinary_steps_on_a_cpu_and_with_trained_cameras(tiny_scene, tmp_path, caplog):
    config = tiny_config(tiny_scene)
    config.cuda_graph_step = True
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "cpu")
    assert trainer.graphed_step is None  # CUDA only
    trainer.train_step()
    assert trainer.step == 1


def test_a_model_without_a_static_loss_is_refused():
    model = get_preset("neus-demo").model.build()
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="no static loss"):
        GraphedStep(model, optimizer)


def test_learning_rates_in_tensors_are_set_in_place_and_saved_as_numbers():
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer = torch.optim.Adam(params, lr=0.1)
    tensor_learning_rates(optimizer)
    group = optimizer.param_groups[0]
    storage = group["lr"]
    assert isinstance(storage, torch.Tensor) and group["capturable"]
    set_learning_rate(group, 0.03)
    assert group["lr"] is storage and storage.item() == pytest.approx(0.03)
    saved = portable_optimizer_state(optimizer.state_dict())
    assert (
        saved["param_groups"][0]["lr"] == pytest.approx(0.03) and not saved["param_groups"][0]["capturable"]
    )
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor)  # the live optimiser is untouched
    fresh = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], lr=1.0)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == pytest.approx(0.03)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graphed_steps_train_as_ordinary_steps(tiny_scene, tmp_path, monkeypatch):
    """Same rays, same random numbers (the tracer's random depths and the eikonal points fixed): the losses
    of graphed and ordinary steps agree step by step, through a capture and a re-capture when a grid level
    unlocks (a small `hashgrid-fused`: fused grid, finite-difference gradients)."""
    rand, uniform = torch.rand, torch.Tensor.uniform_
    losses, captures = {}, 0
    for graphed in (False, True):
        config = tiny_config(tiny_scene, steps=12)
        config.device = "cuda"
        config.cuda_graph_step = graphed
        config.model.tracer.mode = "static"
        config.model.sdf.gradient = "finite_difference"
        config.model.sdf.encoding = HashGridConfig(
            num_levels=4, log2_table_size=12, finest_resolution=64, start_levels=3, unlock_every=0.5
        )
        trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / f"run{graphed}")
        assert (trainer.graphed_step is not None) == graphed
        monkeypatch.setattr(
            torch, "rand", lambda *size, device=None, **kw: torch.full(size, 0.5, device=device)
        )
        monkeypatch.setattr(torch.Tensor, "uniform_", lambda t, a=0.0, b=1.0: t.fill_(0.3 * a + 0.7 * b))
        losses[graphed] = [trainer.train_step().loss for _ in range(12)]
        monkeypatch.setattr(torch, "rand", rand)
        monkeypatch.setattr(torch.Tensor, "uniform_", uniform)
        if graphed:
            captures = trainer.graphed_step.captures
    assert captures == 2  # after the warm-up steps, and when the fourth level unlocked half-way
    torch.testing.assert_close(torch.tensor(losses[True]), torch.tensor(losses[False]), rtol=2e-3, atol=1e-5)
