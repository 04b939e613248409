"""From a config file and command-line axes to numbered trial directories.

The trials of a sweep are `get_sweep(arg)` of the config file (when it defines one) times the
product of the `--axis key=v1,v2` flags. `DIR/sweep.json` records the config and the trial list;
`DIR/trial_<i>/overrides.json` holds trial i's overrides, and the directory is an ordinary
`paperlab.run` workdir. A rerun with the same definition reuses them. A definition that only adds
trials at the end is accepted (the sweep grows). A definition that changes an existing trial raises
ConfigError, because that trial's results would no longer match its overrides.

Trial status is the `status` of its meta.json (running, done, diverged, preempted, failed), or
`pending` when it has none.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import ml_collections

from paperlab import config as config_lib
from paperlab.errors import ConfigError
from paperlab.sweep import algebra

SWEEP_FILE = "sweep.json"
OVERRIDES_FILE = "overrides.json"
SEED_KEYS = ("seed", "data.seed")  # averaged over in the results, never tuned (init2winit)
STATUSES = ("pending", "running", "preempted", "done", "diverged", "failed")
FINISHED = ("done", "diverged")  # a rerun skips these: a diverged trial would diverge again, identically


@dataclasses.dataclass(frozen=True)
class Trial:
  index: int
  overrides: dict[str, Any]
  workdir: pathlib.Path

  @property
  def status(self) -> str:
    return read_meta(self.workdir).get("status", "pending")


def split_config_spec(config_spec: str) -> tuple[str, str | None]:
  path, sep, arg = config_spec.partition(":")
  return path, (arg if sep else None)


def trial_config_spec(config_spec: str, overrides: dict[str, Any]) -> str:
  """`configs/x.py:arg` with the trial's ':arg' override applied."""
  if algebra.CONFIG_ARG_KEY not in overrides:
    return config_spec
  path, _ = split_config_spec(config_spec)
  arg = overrides[algebra.CONFIG_ARG_KEY]
  return f"{path}:{arg}" if arg else path


class ConfigLoader:
  """Loads a config file once and builds the resolved config of any trial from it."""

  def __init__(self, config_spec: str):
    self.config_spec = config_spec
    self.path, self.arg = split_config_spec(config_spec)
    self.module = config_lib.load_module(self.path)
    if not hasattr(self.module, "get_config"):
      raise ConfigError(f"{self.path} defines no get_config(arg=None)")

  def base(self, arg: str | None = None) -> ml_collections.ConfigDict:
    arg = self.arg if arg is None else arg
    return self.module.get_config(arg) if arg else self.module.get_config()

  def sweep(self) -> list[dict[str, Any]] | None:
    """The config file's `get_sweep(arg)`, called with the same arg as `get_config`; None if absent."""
    if not hasattr(self.module, "get_sweep"):
      return None
    trials = self.module.get_sweep(self.arg) if self.arg else self.module.get_sweep()
    return algebra.chain(trials)  # checks that it is a list of dicts

  def trial_config(self, overrides: dict[str, Any]) -> ml_collections.ConfigDict:
    """The resolved config of one trial; ConfigError naming the bad key or value."""
    config = self.base(overrides.get(algebra.CONFIG_ARG_KEY))
    for key, value in overrides.items():
      if key == algebra.CONFIG_ARG_KEY:
        continue
      if value is None:
        raise ConfigError(f"sweep value None for {key!r} cannot be passed as a --config override; "
                          "leave the key out of that trial instead")
      config_lib.set_path(config, key, value)
    config_lib.validate(config)
    return config


def parse_value(raw: str, field_type: type) -> Any:
  """A command-line axis value, typed like the config field it replaces (placeholders included)."""
  raw = raw.strip()
  if field_type is bool:
    lowered = raw.lower()
    if lowered not in ("true", "false", "1", "0"):
      raise ConfigError(f"expected true or false, got {raw!r}")
    return lowered in ("true", "1")
  if field_type is int:
    try:
      return int(raw)
    except ValueError:
      raise ConfigError(f"expected an integer, got {raw!r}") from None
  if field_type is float:
    try:
      return float(raw)
    except ValueError:
      raise ConfigError(f"expected a number, got {raw!r}") from None
  return raw


def parse_axis(text: str, config: ml_collections.ConfigDict) -> algebra.Sweep:
  """`optim.lr=0.01,0.03` -> axis("optim.lr", [0.01, 0.03]), values typed by the config field."""
  key, sep, values = text.partition("=")
  key = key.strip()
  if not sep or not key or not values.strip():
    raise ConfigError(f"--axis {text!r}: expected key=v1,v2,... e.g. --axis optim.lr=0.01,0.03")
  if key == algebra.CONFIG_ARG_KEY:
    return algebra.axis(key, [v.strip() for v in values.split(",")])
  parent, _, leaf = key.rpartition(".")
  try:
    node = get_path(config, parent) if parent else config
    field_type = node.get_type(leaf)
  except (KeyError, AttributeError, TypeError):
    raise config_lib.unknown_field_error(config, key) from None
  if isinstance(node[leaf], ml_collections.ConfigDict):
    raise config_lib.unknown_field_error(config, key)
  try:
    parsed = [parse_value(v, field_type) for v in values.split(",")]
  except ConfigError as error:
    raise ConfigError(f"--axis {key}: {error}") from None
  return algebra.axis(key, parsed)


def get_path(config: ml_collections.ConfigDict, dotted: str) -> Any:
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


def expand(loader: ConfigLoader, axes: Sequence[str], *, use_config_sweep: bool = True) -> algebra.Sweep:
  """The trial list: the config's get_sweep (or one empty trial) times the product of the CLI axes."""
  base = loader.base()
  config_sweep = loader.sweep() if use_config_sweep else None
  parts = [config_sweep if config_sweep is not None else [{}]]
  parts += [parse_axis(text, base) for text in axes]
  trials = algebra.product(*parts)
  if not trials:
    raise ConfigError(f"{loader.path}: get_sweep returned no trials")
  return trials


def parse_trial_range(text: str | None, count: int) -> range:
  """`A:B` (B exclusive, either side may be empty) or `I` -> the trial indices to run."""
  if not text:
    return range(count)
  start, sep, stop = text.partition(":")
  try:
    a = int(start) if start.strip() else 0
    b = (int(stop) if stop.strip() else count) if sep else a + 1
  except ValueError:
    raise ConfigError(f"--trials {text!r}: expected A:B (e.g. 0:8) or a single index") from None
  if not 0 <= a < b <= count:
    raise ConfigError(f"--trials {text!r}: the sweep has trials 0..{count - 1}")
  return range(a, b)


def trial_dir(workdir: pathlib.Path, index: int) -> pathlib.Path:
  return workdir / f"trial_{index:03d}"


def read_json(path: pathlib.Path) -> dict[str, Any]:
  try:
    return json.loads(path.read_text())
  except (FileNotFoundError, json.JSONDecodeError):
    return {}


def write_json(path: pathlib.Path, obj: Any) -> None:
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
  os.replace(tmp, path)


def read_meta(workdir: pathlib.Path) -> dict[str, Any]:
  return read_json(workdir / "meta.json")


def canonical(overrides: dict[str, Any]) -> Any:
  """JSON form of a trial's overrides, for comparing a stored trial with a new definition."""
  return json.loads(json.dumps(overrides, sort_keys=True, default=str))


def prepare(workdir: pathlib.Path, config_spec: str, trials: algebra.Sweep) -> list[Trial]:
  """Writes sweep.json and every trial's overrides.json, or checks them against an earlier run."""
  workdir.mkdir(parents=True, exist_ok=True)
  stored = read_json(workdir / SWEEP_FILE)
  if stored:
    old_trials = stored.get("trials", [])
    if stored.get("config") != config_spec:
      raise ConfigError(f"{workdir} holds a sweep of --config {stored.get('config')}; use a new --workdir")
    for i, (old, new) in enumerate(zip(old_trials, trials)):
      if canonical(old) != canonical(new):
        raise ConfigError(f"{workdir} holds a different sweep: trial {i} was {old} and is now {new}; "
                          "use a new --workdir (trials may only be added at the end)")
    if len(trials) < len(old_trials):
      raise ConfigError(f"{workdir} holds a sweep of {len(old_trials)} trials and this definition has "
                        f"{len(trials)}; use a new --workdir (trials may only be added at the end)")
  now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
  write_json(workdir / SWEEP_FILE, {
      "config": config_spec, "trials": trials, "created": stored.get("created", now), "updated": now,
      "command": " ".join([pathlib.Path(sys.executable).name, "-m", "paperlab.sweep", *sys.argv[1:]])})
  out = []
  for i, overrides in enumerate(trials):
    directory = trial_dir(workdir, i)
    directory.mkdir(exist_ok=True)
    path = directory / OVERRIDES_FILE
    if canonical(read_json(path)) != canonical(overrides) or not path.exists():
      write_json(path, overrides)
    out.append(Trial(i, overrides, directory))
  return out


def load_trials(workdir: pathlib.Path) -> tuple[str, list[Trial]]:
  """(config spec, trials) of an existing sweep directory, for `--results`."""
  stored = read_json(workdir / SWEEP_FILE)
  if not stored:
    raise ConfigError(f"{workdir} is not a sweep directory (no {SWEEP_FILE})")
  return stored["config"], [Trial(i, o, trial_dir(workdir, i)) for i, o in enumerate(stored["trials"])]
