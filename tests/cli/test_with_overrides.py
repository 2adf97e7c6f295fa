"""`nsr train` argument parsing: dotted KEY=VALUE overrides of a config, and the -cams schedule."""

import pytest

from nsr.cli.train import parse, with_overrides
from nsr.config import get_preset
from nsr.config.io import ConfigError


def test_overrides_apply_to_the_given_config_not_the_preset():
    config = get_preset("hashgrid-fused-cams")
    config.steps = 7000
    config.cameras.warmup_until = 0.123
    out = with_overrides(
        config,
        [
            "model.sdf.encoding.unlock_every=0.04",
            "model.loss.alpha_milestones=0.1 0.3",
            "cameras.lr=2e-3",
        ],
    )
    assert out.model.sdf.encoding.unlock_every == pytest.approx(0.04)
    assert out.model.loss.alpha_milestones == (0.1, 0.3)
    assert out.cameras.lr == pytest.approx(2e-3)
    # Fields not overridden keep the given config's values (not the preset's).
    assert out.steps == 7000 and out.cameras.warmup_until == 0.123 and out.cameras.trainable


def test_overrides_switch_an_encoding_kind():
    out = with_overrides(get_preset("demo"), ["model.sdf.encoding=hashgrid"])
    assert type(out.model.sdf.encoding).__name__ == "HashGridConfig"


def test_an_override_without_a_value_is_refused():
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        with_overrides(get_preset("demo"), ["steps"])


def test_a_cams_preset_camera_schedule_is_in_fractions_of_the_run():
    cameras = parse(["--out", "x", "--preset", "hashgrid-fused-cams", "--steps", "7000"]).config.cameras
    # The -cams preset's own steps (1.5x the preset's 15000) set the freeze: 1000 steps at most.
    assert cameras.warmup_until == pytest.approx(1000 / 22500) and cameras.lr_milestones == (0.5, 0.75)
    cameras = parse(["--out", "x", "--preset", "demo-cams", "--steps=1000"]).config.cameras
    assert cameras.warmup_until == pytest.approx(0.15) and cameras.lr_milestones == (0.5, 0.75)
    # Explicit camera flags win; presets without trained cameras get no schedule.
    argv = ["--out", "x", "--preset", "demo-cams", "--steps", "1000", "--cameras.warmup-until", "0.05"]
    assert parse(argv).config.cameras.warmup_until == pytest.approx(0.05)
    cameras = parse(["--out", "x", "--preset", "demo", "--steps", "1000"]).config.cameras
    assert not cameras.trainable and cameras.lr_milestones == ()


def test_the_cams_presets_train_longer_where_measured():
    """The grid, bank and demo -cams variants take 1.5x the preset's steps (the cameras are still converging
    when the preset's end); the long MLP presets and NeuS keep theirs."""
    for name, factor in [("demo", 1.5), ("hashgrid-fused", 1.5), ("nffb-fused", 1.5), ("stylemod-nffb", 1.5),
                         ("positional", 1.0), ("fourier", 1.0), ("neus-hashgrid-fused", 1.0), ("neus-demo", 1.0)]:  # fmt: skip
        assert get_preset(name + "-cams").steps == round(factor * get_preset(name).steps), name
    config = parse(["--out", "x", "--preset", "hashgrid-fused-cams"]).config
    assert config.steps == 22500 and config.cameras.warmup_until * config.steps == pytest.approx(1000)
    assert parse(["--out", "x", "--preset", "demo-cams", "--steps", "800"]).config.steps == 800


def test_the_grid_cams_presets_fill_pockets_from_a_fifth_of_the_run():
    pockets = parse(["--out", "x", "--preset", "hashgrid-fused-cams"]).config.pockets
    assert pockets.enabled and (pockets.start, pockets.every) == (0.2, pytest.approx(2 / 15))
    pockets = parse(["--out", "x", "--preset", "hashgrid-cams", "--pockets.every", "0"]).config.pockets
    assert not pockets.enabled
    # MLP presets and presets without trained cameras: off, whatever the steps.
    for argv in (
        ["--preset", "demo-cams", "--steps", "1000"],
        ["--preset", "positional-cams"],
        ["--preset", "hashgrid"],
    ):
        assert not parse(["--out", "x", *argv]).config.pockets.enabled


def test_boolean_overrides_take_true_or_false():
    assert with_overrides(get_preset("demo"), ["tensorboard=false"]).tensorboard is False
    assert with_overrides(get_preset("demo"), ["tensorboard=False", "tensorboard=true"]).tensorboard is True
    assert not with_overrides(get_preset("demo-cams"), ["cameras.trainable=false"]).cameras.trainable
    assert (
        with_overrides(
            get_preset("demo-cams"), ["cameras.pose_noise=2,0.02,3", "cameras.pose_noise="]
        ).cameras.pose_noise
        == ""
    )
    with pytest.raises(ConfigError, match="tensorboard is true or false"):
        with_overrides(get_preset("demo"), ["tensorboard=1"])


def test_an_unknown_key_is_named():
    with pytest.raises(
        ConfigError, match=r"override 'model\.sdf\.hiden_dim': SDFFieldConfig has no field 'hiden_dim'"
    ):
        with_overrides(get_preset("demo"), ["model.sdf.hiden_dim=3"])
    # Past a union field (the kind may be switched by an earlier override) tyro checks the names.
    out = with_overrides(
        get_preset("demo"), ["model.sdf.encoding=hashgrid", "model.sdf.encoding.num_levels=4"]
    )
    assert out.model.sdf.encoding.num_levels == 4
