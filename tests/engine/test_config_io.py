import pytest

from nsr.config import PRESETS, ConfigError, TrainConfig, get_preset, load_yaml, save_yaml


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_through_yaml(tmp_path, name):
    config = get_preset(name)
    save_yaml(config, tmp_path / "config.yaml", "train")
    assert load_yaml(TrainConfig, tmp_path / "config.yaml", "train") == config
    text = (tmp_path / "config.yaml").read_text()
    assert "kind: train" in text and "schema_version: 2" in text and "!!python" not in text


def test_unknown_keys_and_kinds_are_clear_errors(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("kind: train\nschema_version: 1\nconfig:\n  steps: 3\n  stepz: 4\n")
    with pytest.raises(ConfigError, match="stepz"):
        load_yaml(TrainConfig, path, "train")
    path.write_text(
        "kind: train\nschema_version: 1\nconfig:\n  model:\n    sdf:\n      encoding:\n        kind: nope\n"
    )
    with pytest.raises(ConfigError, match="nope"):
        load_yaml(TrainConfig, path, "train")
    path.write_text("kind: other\n")
    with pytest.raises(ConfigError, match="not an NSR train config"):
        load_yaml(TrainConfig, path, "train")


def test_unknown_preset():
    with pytest.raises(ConfigError, match="available"):
        get_preset("nope")
