"""`nsr train` argument parsing: dotted KEY=VALUE overrides of a config, and the -cams schedule."""

import pytest

from nsr.cli.train import parse, with_overrides
from nsr.config import get_preset


def test_overrides_apply_to_the_given_config_not_the_preset():
    config = get_preset("hashgrid-fused-cams")
    config.steps = 7000
    config.cameras.warmup_steps = 123
    out = with_overrides(
        config,
        [
            "model.sdf.encoding.steps_per_level=600",
            "model.loss.alpha_milestones=2000 4000",
            "cameras.lr=2e-3",
        ],
    )
    assert out.model.sdf.encoding.steps_per_level == 600
    assert out.model.loss.alpha_milestones == (2000, 4000)
    assert out.cameras.lr == pytest.approx(2e-3)
    # Fields not overridden keep the given config's values (not the preset's).
    assert out.steps == 7000 and out.cameras.warmup_steps == 123 and out.cameras.trainable


def test_overrides_switch_an_encoding_kind():
    out = with_overrides(get_preset("demo"), ["model.sdf.encoding=hashgrid"])
    assert type(out.model.sdf.encoding).__name__ == "HashGridConfig"


def test_an_override_without_a_value_is_refused():
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        with_overrides(get_preset("demo"), ["steps"])


def test_a_cams_preset_camera_schedule_follows_steps():
    cameras = parse(["--out", "x", "--preset", "hashgrid-fused-cams", "--steps", "7000"]).config.cameras
    assert cameras.warmup_steps == 1000 and cameras.lr_milestones == (3500, 5250)
    cameras = parse(["--out", "x", "--preset", "demo-cams", "--steps=1000"]).config.cameras
    assert cameras.warmup_steps == 150 and cameras.lr_milestones == (500, 750)
    # Explicit camera flags win; presets without trained cameras get no schedule.
    argv = ["--out", "x", "--preset", "demo-cams", "--steps", "1000", "--cameras.warmup-steps", "5"]
    cameras = parse(argv).config.cameras
    assert cameras.warmup_steps == 5 and cameras.lr_milestones == (500, 750)
    cameras = parse(["--out", "x", "--preset", "demo", "--steps", "1000"]).config.cameras
    assert not cameras.trainable and cameras.lr_milestones == ()


def test_the_grid_cams_presets_fill_pockets_on_a_schedule_that_follows_steps():
    pockets = parse(["--out", "x", "--preset", "hashgrid-fused-cams"]).config.pockets
    assert pockets.enabled and (pockets.start, pockets.every) == (3000, 2000)
    pockets = parse(["--out", "x", "--preset", "nffb-cams", "--steps", "7500"]).config.pockets
    assert (pockets.start, pockets.every) == (1500, 1000)
    pockets = parse(["--out", "x", "--preset", "hashgrid-cams", "--pockets.every", "0"]).config.pockets
    assert not pockets.enabled
    # MLP presets and presets without trained cameras: off, whatever the steps.
    for argv in (
        ["--preset", "demo-cams", "--steps", "1000"],
        ["--preset", "positional-cams"],
        ["--preset", "hashgrid"],
    ):
        assert not parse(["--out", "x", *argv]).config.pockets.enabled
