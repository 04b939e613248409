"""Config loading, parse_arg, overrides by dotted path, and the no-bare-None rule for every config."""
import pathlib

import ml_collections
import pytest
from ml_collections import config_dict

from paperlab import config as config_lib
from paperlab.errors import ConfigError

CONFIGS = sorted(pathlib.Path(__file__).resolve().parent.parent.glob("configs/*.py"))


def test_parse_arg_types_and_errors():
  arg = config_lib.parse_arg("model=vit,runlocal,steps=5", model="mlp", runlocal=False, steps=10)
  assert (arg.model, arg.runlocal, arg.steps) == ("vit", True, 5)
  with pytest.raises(ConfigError, match="unknown config arg 'size'.*valid: model"):
    config_lib.parse_arg("size=3", model="mlp")
  with pytest.raises(ConfigError, match="expected int"):
    config_lib.parse_arg("steps=abc", steps=10)


def test_set_path_and_unknown_field_message():
  c = config_lib.base_config()
  config_lib.set_path(c, "log.progress", False)
  assert c.log.progress is False
  with pytest.raises(ConfigError, match=r"unknown config field 'log.nope'; valid fields of log: plot, progress"):
    config_lib.set_path(c, "log.nope", 1)
  with pytest.raises(ConfigError, match="bad value"):
    config_lib.set_path(c, "total_steps", "many")


def test_validate_names_the_field():
  c = config_lib.base_config()
  c.model.name, c.data.name, c.optim.name = "mlp", "digits", "sgd"
  config_lib.validate(c)
  c.total_steps = 0
  with pytest.raises(ConfigError, match="config.total_steps must be a positive integer"):
    config_lib.validate(c)


def test_find_bare_none():
  c = ml_collections.ConfigDict({"a": None, "b": {"c": None, "d": config_dict.placeholder(float)}})
  assert config_lib.find_bare_none(c) == ["a", "b.c"]


def test_missing_config_file():
  with pytest.raises(ConfigError, match="config file not found: nope.py"):
    config_lib.load("nope.py")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_loads_validates_and_has_no_bare_none(path):
  module = config_lib.load_module(str(path))
  assert "Command:" in module.__doc__ and "python -m paperlab" in module.__doc__, "docstring needs the command"
  assert "Expected" in module.__doc__, "docstring needs the expected result"
  config = module.get_config()
  config_lib.validate(config)
  assert config_lib.find_bare_none(config) == []
