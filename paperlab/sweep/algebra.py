"""The sweep algebra: lists of trials built from axes with product, zip, chain and fixed.

A sweep is a plain `list[dict]`; each dict is one trial's dotted config overrides, e.g.
`{"optim.lr": 0.1, "seed": 2}`. The combinators mirror big_vision's `hyper.product/zipit/chainit/
fixed` (whose launcher Google never released):

  axis("optim.lr", [1e-3, 1e-2])               -> [{"optim.lr": 1e-3}, {"optim.lr": 1e-2}]
  product(a, b)     every trial of a merged with every trial of b (a varies slowest)
  zip(a, b)         a[i] merged with b[i]; a and b must have the same length
  chain(a, b)       the trials of a, then those of b
  fixed(k=v, ...)   one trial: product(fixed(...), s) sets the same values on every trial of s

Merging two trials that set the same key to different values is a mistake (which value wins would
be an accident of argument order), so it raises ConfigError. The reserved key ":arg" replaces the
config-file argument (`configs/x.py:<arg>`) for that trial, big_vision's `bvcc.arg`.
"""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from paperlab.errors import ConfigError

Trial = dict[str, Any]
Sweep = list[Trial]

CONFIG_ARG_KEY = ":arg"


def axis(key: str, values: Iterable[Any]) -> Sweep:
  """One trial per value of the dotted config field `key`."""
  if not isinstance(key, str) or not key:
    raise ConfigError(f"a sweep axis needs a dotted config field name, got {key!r}")
  values = list(values)
  if not values:
    raise ConfigError(f"sweep axis {key!r} has no values")
  return [{key: value} for value in values]


def fixed(overrides: Mapping[str, Any] | None = None, **kwargs: Any) -> Sweep:
  """A single trial; `fixed({"optim.name": "sgd"})` or `fixed(seed=0)` for undotted names."""
  trial = dict(overrides or {})
  trial.update(kwargs)
  return [trial]


def _check(sweep: Any, where: str) -> Sweep:
  if isinstance(sweep, Mapping) or not isinstance(sweep, Iterable):
    raise ConfigError(f"{where}: expected a list of trial dicts (use axis(...) or fixed(...)), got {type(sweep).__name__}")
  trials = list(sweep)
  for trial in trials:
    if not isinstance(trial, Mapping):
      raise ConfigError(f"{where}: every trial must be a dict of dotted overrides, got {trial!r}")
  return [dict(t) for t in trials]


def merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> Trial:
  """The union of two trials' overrides; a key set to two different values raises ConfigError."""
  merged = dict(a)
  for key, value in b.items():
    if key in merged and merged[key] != value:
      raise ConfigError(f"sweep sets {key!r} twice, to {merged[key]!r} and {value!r}; each key may come from one axis")
    merged[key] = value
  return merged


def product(*sweeps: Iterable[Mapping[str, Any]]) -> Sweep:
  """Every combination; the first sweep varies slowest (like nested for-loops)."""
  checked = [_check(s, f"product argument {i}") for i, s in enumerate(sweeps)]
  out = []
  for combo in itertools.product(*checked):
    trial: Trial = {}
    for part in combo:
      trial = merge(trial, part)
    out.append(trial)
  return out


def zip(*sweeps: Iterable[Mapping[str, Any]]) -> Sweep:  # pylint: disable=redefined-builtin
  """Trial i of every sweep merged into one; all sweeps must have the same length."""
  checked = [_check(s, f"zip argument {i}") for i, s in enumerate(sweeps)]
  lengths = [len(s) for s in checked]
  if len(set(lengths)) > 1:
    raise ConfigError(f"zip needs sweeps of equal length, got lengths {lengths}")
  out = []
  for parts in builtins.zip(*checked):
    trial: Trial = {}
    for part in parts:
      trial = merge(trial, part)
    out.append(trial)
  return out


def chain(*sweeps: Iterable[Mapping[str, Any]]) -> Sweep:
  """The trials of each sweep one after the other."""
  out = []
  for i, sweep in enumerate(sweeps):
    out.extend(_check(sweep, f"chain argument {i}"))
  return out
