"""`benchmarks/early_opacity.py`: the first steps' opacity of a NeuS run, per config override."""

from __future__ import annotations

import pytest

from conftest import load_benchmark


def test_the_first_steps_opacity_of_a_neus_run_with_an_override(tiny_scene):
    tool = load_benchmark("early_opacity")
    ops = tool.opacities(
        "neus-demo", tiny_scene, ["model.colour_init=mean"], seed=0, rays=16, steps=3, run_steps=100
    )
    assert len(ops) == 3 and all(0.0 <= o <= 1.0 for o in ops)
    with pytest.raises(SystemExit, match="not a NeuS preset"):
        tool.opacities("demo", tiny_scene, [], seed=0, rays=16, steps=1, run_steps=100)
