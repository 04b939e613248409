"""Data sources by name: `default_config(name)` and `build(config.data, batch_size=...)`.

A small registry (name -> module) with one prefix family, `tfds:<dataset>`, dispatched as in
big_vision's `bv:` names. Modules are imported on first use, so `import paperlab.data` stays cheap
and TFDS/grain/scikit-learn load only for the sources that need them.
"""
import importlib
from types import ModuleType

import ml_collections

from paperlab.data import config as config_lib
from paperlab.data.source import Source
from paperlab.errors import ConfigError, unknown_name_error

SOURCES = {
    "digits": "paperlab.data.digits",
    "icl_regression": "paperlab.data.icl_regression",
    "mqar": "paperlab.data.mqar",
    "random_labels": "paperlab.data.random_labels",
}
PREFIXES = {"tfds:": "paperlab.data.tfds_source"}


def names() -> list[str]:
  """The valid source names, with the prefix families written as e.g. 'tfds:<name>'."""
  return sorted(SOURCES) + [f"{prefix}<name>" for prefix in PREFIXES]


def _module(name) -> ModuleType:
  if not isinstance(name, str):
    raise ConfigError(f"config.data.name must be a str, got {name!r}")
  if name in SOURCES:
    return importlib.import_module(SOURCES[name])
  for prefix, module in PREFIXES.items():
    if name.startswith(prefix):
      if not name[len(prefix):]:
        raise ConfigError(f"data source {name!r} needs a dataset name after {prefix!r}, "
                          f"e.g. '{prefix}mnist'")
      return importlib.import_module(module)
  raise unknown_name_error("data source", name, names())


def default_config(name: str) -> ml_collections.ConfigDict:
  """Every field that source `name` reads, with its default (name and seed included)."""
  return _module(name).default_config(name)


def build(data_config, *, batch_size: int) -> Source:
  """The source named `data_config.name`, configured by the other fields of `data_config`."""
  name = data_config.get("name") if hasattr(data_config, "get") else None
  if name is None:
    raise ConfigError(f"config.data.name is not set; valid: {', '.join(names())}")
  module = _module(name)
  resolved = config_lib.resolve(data_config, module.default_config(name))
  config_lib.require(isinstance(batch_size, int) and not isinstance(batch_size, bool)
                     and batch_size >= 1, f"batch_size must be a positive int, got {batch_size!r}")
  config_lib.require(resolved.seed >= 0, f"config.data.seed must be >= 0, got {resolved.seed}")
  return module.build(resolved, batch_size)
