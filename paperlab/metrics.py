"""Run outputs: metrics.jsonl (the source of truth), meta.json, console progress, TensorBoard, plots.

`metrics.jsonl` holds one JSON object per logged step, `{"step": s, "train/loss": ..., ...}` for train
rows and `{"step": s, "eval/loss": ..., ...}` for eval rows. Every other view (progress bar, summary
table, metrics.png, TensorBoard, sweep results) is derived from those rows.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any, Iterable

# Fields that depend on the wall clock: they differ between an interrupted and an uninterrupted
# run, so they are excluded when runs are compared for exactness.
TIMING_FIELDS = ("train/steps_per_sec", "train/examples_per_sec", "compile_secs", "eval/secs")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
  path = pathlib.Path(path)
  if not path.exists():
    return []
  rows = []
  for line in path.read_text().splitlines():
    line = line.strip()
    if not line:
      continue
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      break  # a line cut short by a kill: everything after it is discarded too
  return rows


def _to_json_number(value: Any) -> Any:
  value = float(value) if not isinstance(value, (int, str, bool)) else value
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # JSON has no NaN/inf; keep them visible as strings
  return value


class JsonlWriter:
  """Appends rows to metrics.jsonl; `truncate_after(step)` drops rows a resumed run will redo."""

  def __init__(self, path: str | os.PathLike):
    self.path = pathlib.Path(path)
    self._file = None

  def truncate_after(self, step: int) -> None:
    rows = [r for r in read_jsonl(self.path) if r["step"] <= step]
    tmp = self.path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, self.path)

  def write(self, step: int, scalars: dict[str, Any]) -> None:
    if self._file is None:
      self._file = open(self.path, "a", encoding="utf-8")
    row = {"step": int(step), **{k: _to_json_number(v) for k, v in scalars.items()}}
    self._file.write(json.dumps(row) + "\n")

  def flush(self) -> None:
    if self._file is not None:
      self._file.flush()
      os.fsync(self._file.fileno())

  def close(self) -> None:
    if self._file is not None:
      self.flush()
      self._file.close()
      self._file = None


class TensorBoardWriter:
  """Optional mirror of the scalars for TensorBoard (needs the `tb` extra: tensorboardX)."""

  def __init__(self, logdir: str | os.PathLike):
    try:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
    except ImportError:
      from paperlab.errors import ConfigError  # pylint: disable=import-outside-toplevel
      raise ConfigError("config.log.tensorboard=True needs tensorboardX: pip install -e '.[tb]'") from None
    self._writer = SummaryWriter(str(logdir))

  def write(self, step: int, scalars: dict[str, Any]) -> None:
    for key, value in scalars.items():
      self._writer.add_scalar(key, float(value), int(step))

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class Progress:
  """A console progress bar: step, loss, task metric, steps/s and ETA (tqdm)."""

  def __init__(self, total: int, initial: int, enabled: bool):
    self._bar = None
    self._shown: dict[str, str] = {}
    if enabled:
      from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
      self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, smoothing=0.1,
                       bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]")

  def update(self, step: int, scalars: dict[str, Any] | None = None) -> None:
    if self._bar is None:
      return
    self._bar.update(step - self._bar.n)
    if scalars:
      for key in ("train/loss", "train/accuracy", "train/mse", "eval/accuracy", "eval/mse"):
        if key in scalars:
          self._shown[key.replace("train/", "")] = f"{float(scalars[key]):.4g}"
      self._bar.set_postfix(self._shown, refresh=False)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()


def summary_table(rows: Iterable[dict[str, Any]], *, title: str) -> str:
  """The final table: last value of every train/eval metric, and the best eval value."""
  last: dict[str, Any] = {}
  best: dict[str, float] = {}
  for row in rows:
    for key, value in row.items():
      if key == "step":
        continue
      last[key] = (row["step"], value)
      if key.startswith("eval/") and isinstance(value, (int, float)):
        better = max if key.endswith("accuracy") else min
        best[key] = better(best.get(key, value), value)
  width = max([len(k) for k in last] + [10])
  lines = [title, f"  {'metric':<{width}}  {'step':>7}  {'last':>12}  {'best':>12}"]
  for key in sorted(last):
    step, value = last[key]
    shown = f"{value:.6g}" if isinstance(value, (int, float)) else str(value)
    best_shown = f"{best[key]:.6g}" if key in best else ""
    lines.append(f"  {key:<{width}}  {step:>7}  {shown:>12}  {best_shown:>12}")
  return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: str | os.PathLike, *, metric: str) -> None:
  """metrics.png: train and eval loss, and the eval task metric, against step."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  def series(key):
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]

  fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.8))
  for key, style in (("train/loss", "-"), ("eval/loss", "o-")):
    xs, ys = series(key)
    if xs:
      ax_loss.plot(xs, ys, style, label=key, markersize=3)
  ax_loss.set_xlabel("step"), ax_loss.set_ylabel("loss"), ax_loss.legend()
  if all(y > 0 for y in series("train/loss")[1]) and series("train/loss")[1]:
    ax_loss.set_yscale("log")
  for key in (f"train/{metric}", f"eval/{metric}"):
    xs, ys = series(key)
    if xs:
      ax_metric.plot(xs, ys, "o-" if key.startswith("eval") else "-", label=key, markersize=3)
  ax_metric.set_xlabel("step"), ax_metric.set_ylabel(metric), ax_metric.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
