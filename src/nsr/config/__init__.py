"""Configs: the top-level training config, presets, and safe YAML save/load."""

from nsr.config.io import ConfigError, from_dict, load_yaml, save_yaml, to_dict
from nsr.config.presets import PRESETS, get_preset
from nsr.config.train import DataConfig, OptimConfig, TrainConfig

__all__ = [
    "PRESETS",
    "ConfigError",
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "from_dict",
    "get_preset",
    "load_yaml",
    "save_yaml",
    "to_dict",
]
