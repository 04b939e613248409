"""Checking a data config against a source's defaults: unknown fields, types, values.

Every source declares its fields once, in its `default_config`. A user's `config.data` is checked
against those defaults here, so that a typo or a wrong type fails with one `ConfigError` line that
names the field and what is valid, before anything is built or compiled.
"""
from collections.abc import Mapping
from typing import Any

import ml_collections
from ml_collections import config_dict

from paperlab.errors import ConfigError


def base_config(name: str, **fields: Any) -> ml_collections.ConfigDict:
  """The fields every source has (`name`, `seed` = the data-order seed) plus `fields`."""
  return ml_collections.ConfigDict({"name": name, "seed": 0, **fields})


def resolve(data_config: Any, defaults: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Returns `defaults` overridden by `data_config`, after checking every given field.

  Fields missing from `data_config` keep their defaults. A field that `defaults` lacks, or a value
  of the wrong type, raises `ConfigError`. Optional fields (placeholders in `defaults`) accept None.
  """
  if isinstance(data_config, ml_collections.ConfigDict) or isinstance(data_config, Mapping):
    given = dict(data_config.items())
  else:
    raise ConfigError(f"config.data must be a ConfigDict or dict, got {type(data_config).__name__}")
  name = defaults.name
  valid = sorted(defaults.keys())
  resolved = ml_collections.ConfigDict(defaults.to_dict(), type_safe=False)
  for field, value in given.items():
    if field not in defaults:
      raise ConfigError(f"unknown field config.data.{field} for data source {name!r}; "
                        f"valid fields: {', '.join(valid)}")
    _check_type(field, value, defaults)
    if value is not None and defaults.get_type(field) is float:
      value = float(value)
    resolved[field] = value
  return resolved


def _check_type(field: str, value: Any, defaults: ml_collections.ConfigDict) -> None:
  expected = defaults.get_type(field)
  optional = defaults[field] is None
  if value is None:
    if optional:
      return
    raise ConfigError(f"config.data.{field} must be a {expected.__name__}, got None")
  if expected is float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  elif expected is int:
    ok = isinstance(value, int) and not isinstance(value, bool)
  else:
    ok = isinstance(value, expected)
  if not ok:
    raise ConfigError(f"config.data.{field} must be a {expected.__name__}, got {value!r}")


def require(condition: bool, message: str) -> None:
  """Raises `ConfigError(message)` unless `condition`: the one-line value checks of each source."""
  if not condition:
    raise ConfigError(message)


def placeholder(field_type: type) -> Any:
  """An optional field: unset is None, and `--config.data.<field>=...` can still set it."""
  return config_dict.placeholder(field_type)
