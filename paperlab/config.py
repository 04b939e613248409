"""The trainer's own config fields, and loading and validating a config file.

A config file defines `get_config(arg: str | None = None) -> ConfigDict` (big_vision style) built on
`base_config()`, which holds every field `paperlab.train` reads. Sections `model`, `data` and `optim`
come from their packages' `default_config(...)`, so every field exists before the command line
overrides it (a locked ConfigDict rejects new keys, and a bare `None` cannot be overridden).
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from typing import Any

import ml_collections
from ml_collections import config_dict

from paperlab.errors import ConfigError

# Fields of the top level that the trainer reads; model/data/optim are validated by their builders.
TRAINER_FIELDS = (
    "seed", "total_steps", "batch_size", "eval_batch_size", "log_every", "eval_every", "ckpt_every",
    "max_to_keep", "target_metric", "model", "data", "optim", "mesh", "log",
)
# Fields that may differ when a run is resumed: they change cadence and duration, not the numbers.
RESUME_MUTABLE_FIELDS = ("total_steps", "log_every", "eval_every", "ckpt_every", "max_to_keep", "log")


def base_config() -> ml_collections.ConfigDict:
  """Trainer defaults; configs fill `model`, `data` and `optim` and change what they need."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # model init and optimizer noise; the data order has its own `data.seed`
  c.total_steps = 1000
  c.batch_size = 128
  c.eval_batch_size = 512
  c.log_every = 50
  c.eval_every = 250  # also evaluated at the last step
  c.ckpt_every = 500  # also saved at the last step and on SIGTERM/SIGINT
  c.max_to_keep = 3
  c.target_metric = "eval/accuracy"  # what a sweep ranks trials by (prefix '-' is not needed: see sweep)
  c.model = ml_collections.ConfigDict()
  c.data = ml_collections.ConfigDict()
  c.optim = ml_collections.ConfigDict()
  c.mesh = ml_collections.ConfigDict({"data": -1})  # -1: all devices on the data axis
  c.log = ml_collections.ConfigDict({"progress": True, "tensorboard": False, "plot": True})
  return c


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the trainer's fields; raises ConfigError naming the field and what is valid."""
  missing = [f for f in TRAINER_FIELDS if f not in config]
  if missing:
    raise ConfigError(f"config is missing trainer fields {missing}; start configs from paperlab.config.base_config()")
  unknown = sorted(set(config.keys()) - set(TRAINER_FIELDS))
  if unknown:
    raise ConfigError(f"unknown config field(s) {unknown}; valid top-level fields: {', '.join(TRAINER_FIELDS)}")
  for name in ("total_steps", "batch_size", "eval_batch_size", "log_every", "eval_every", "ckpt_every", "max_to_keep"):
    value = config[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ConfigError(f"config.{name} must be a positive integer, got {value!r}")
  for section in ("model", "data", "optim"):
    if "name" not in config[section]:
      raise ConfigError(f"config.{section}.name is not set")
  mesh_data = config.mesh.get("data", -1)
  if not isinstance(mesh_data, int) or (mesh_data < 1 and mesh_data != -1):
    raise ConfigError(f"config.mesh.data must be -1 (all devices) or a positive integer, got {mesh_data!r}")


def find_bare_none(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  """Dotted paths of fields whose value is a bare None (they cannot be overridden from the CLI)."""
  paths = []
  for key in config.keys():
    field = config._fields[key]  # pylint: disable=protected-access
    path = f"{prefix}{key}"
    if isinstance(field, config_dict.FieldReference):
      if field.get() is None and field.get_type() is type(None):
        paths.append(path)
      continue
    value = config[key]
    if isinstance(value, ml_collections.ConfigDict):
      paths.extend(find_bare_none(value, path + "."))
    elif value is None:
      paths.append(path)
  return paths


def load_module(path: str):
  """Imports a config file as a module; ConfigError when it does not exist."""
  file = pathlib.Path(path)
  if not file.is_file():
    raise ConfigError(f"config file not found: {path}")
  spec = importlib.util.spec_from_file_location(f"paperlab_config_{file.stem}", file)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module


def load(path_and_arg: str) -> ml_collections.ConfigDict:
  """Loads `configs/x.py[:arg]` the way `--config` does, for notebooks, tests and sweeps."""
  path, _, arg = path_and_arg.partition(":")
  module = load_module(path)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"{path} defines no get_config(arg=None)")
  return module.get_config(arg) if arg else module.get_config()


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """big_vision's `parse_arg`: 'model=vit,runlocal' -> ConfigDict with typed defaults.

  A bare `name` sets a bool default to True. Unknown keys raise ConfigError listing the valid ones.
  """
  result = ml_collections.ConfigDict(defaults)
  if not arg:
    return result
  for item in arg.split(","):
    item = item.strip()
    if not item:
      continue
    key, sep, raw = item.partition("=")
    if key not in defaults:
      raise ConfigError(f"unknown config arg {key!r}; valid: {', '.join(defaults) or '(none)'}")
    default = defaults[key]
    if not sep:
      if not isinstance(default, bool):
        raise ConfigError(f"config arg {key!r} needs a value ({key}=...)")
      result[key] = True
      continue
    try:
      if isinstance(default, bool):
        value = {"true": True, "1": True, "false": False, "0": False}[raw.lower()]
      else:
        value = type(default)(raw)
    except (KeyError, ValueError):
      raise ConfigError(f"config arg {key}={raw!r}: expected {type(default).__name__}") from None
    result[key] = value
  return result


def set_path(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
  """Sets `a.b.c` on a config, with the same checks as a `--config.a.b.c=` override."""
  *parents, leaf = dotted.split(".")
  node = config
  for i, part in enumerate(parents):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise unknown_field_error(config, ".".join(parents[: i + 1]))
    node = node[part]
  if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
    raise unknown_field_error(config, dotted)
  try:
    node[leaf] = value
  except TypeError as e:
    raise ConfigError(f"bad value for config field {dotted!r}: {e}") from None


def unknown_field_error(config: ml_collections.ConfigDict, dotted: str) -> ConfigError:
  """ConfigError for a dotted path that does not exist, listing the valid fields at that level."""
  parts = dotted.split(".")
  node = config
  for i, part in enumerate(parts):
    if isinstance(node, ml_collections.ConfigDict) and part in node:
      node = node[part]
      continue
    where = ".".join(parts[:i]) or "the top level"
    valid = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
    return ConfigError(f"unknown config field {dotted!r}; valid fields of {where}: {', '.join(valid)}")
  return ConfigError(f"config field {dotted!r} is not a leaf that can be set")
