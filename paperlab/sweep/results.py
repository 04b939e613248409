"""Sweep results: `results.csv`, the printed table sorted by the target metric, and `sweep.png`.

Everything is read back from the trial directories (overrides.json, meta.json, metrics.jsonl), so the
table can be printed at any time, also while the sweep runs (`python -m paperlab.sweep --results DIR`).

The target metric is the config's `target_metric` (e.g. "eval/accuracy"). Higher is better when its
name contains accuracy, acc, auc, f1, precision, recall, score, reward or return; lower is better
otherwise (loss, mse, error, perplexity, ...). `--mode max|min` overrides that guess. A trial's
"final" value is the target metric's last logged value and "best" its best over the run; the table
ranks by the final value (the best one flatters noisy runs).

Seeds (`seed`, `data.seed`) are an axis to average over, never a hyperparameter to tune (init2winit):
when one is swept, the table groups trials that differ only in their seeds and shows the mean and the
sample standard deviation (ddof=1) of the final value over the seeds that produced one.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import os
import pathlib
import statistics
from collections.abc import Sequence
from typing import Any

from paperlab import metrics as metrics_lib
from paperlab.sweep import algebra
from paperlab.sweep import trials as trials_lib

HIGHER_IS_BETTER = ("accuracy", "acc", "auc", "f1", "precision", "recall", "score", "reward", "return")
MODES = ("max", "min")
RESULTS_FILE = "results.csv"
PLOT_FILE = "sweep.png"


def metric_mode(metric: str) -> str:
  """'max' when a larger value of `metric` is better, judged by its name; else 'min'."""
  name = metric.rsplit("/", 1)[-1].lower()
  words = name.replace("-", "_").split("_")
  return "max" if any(w in HIGHER_IS_BETTER for w in words) else "min"


def _time(text: str | None) -> datetime.datetime | None:
  try:
    return datetime.datetime.fromisoformat(text) if text else None
  except ValueError:
    return None


def trial_row(trial: trials_lib.Trial, metric: str, mode: str) -> dict[str, Any]:
  """One trial's result: status, final and best target value, steps reached, wall time."""
  meta = trials_lib.read_meta(trial.workdir)
  rows = metrics_lib.read_jsonl(trial.workdir / "metrics.jsonl")
  values = [r[metric] for r in rows if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
  better = max if mode == "max" else min
  start, end = _time(meta.get("start_time")), _time(meta.get("end_time"))
  if start and not end and meta.get("status") == "running":
    end = datetime.datetime.now().astimezone()
  steps = [r["step"] for r in rows]
  return {
      "trial": trial.index,
      "overrides": trial.overrides,
      "status": meta.get("status", "pending"),
      "final": values[-1] if values else None,
      "best": better(values) if values else None,
      "step": meta.get("step") or (max(steps) if steps else 0),
      "wall_secs": round((end - start).total_seconds(), 1) if start and end else None,
      "error": meta.get("error", ""),
  }


def target_metric(trials: Sequence[trials_lib.Trial], default: str = "eval/accuracy") -> str:
  """The target metric recorded in the trials' config.json (the same for all trials of a sweep)."""
  for trial in trials:
    config = trials_lib.read_json(trial.workdir / "config.json")
    if config.get("target_metric"):
      return config["target_metric"]
  return default


def collect(trials: Sequence[trials_lib.Trial], metric: str, mode: str | None = None) -> list[dict[str, Any]]:
  mode = mode or metric_mode(metric)
  return [trial_row(t, metric, mode) for t in trials]


def override_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
  keys: list[str] = []
  for row in rows:
    keys += [k for k in row["overrides"] if k not in keys]
  return keys


def swept_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
  """Override keys that take more than one value in the sweep."""
  def distinct(key):
    return {json.dumps(r["overrides"].get(key), sort_keys=True, default=str) for r in rows}
  return [k for k in override_keys(rows) if len(distinct(k)) > 1]


def seed_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
  return [k for k in swept_keys(rows) if k in trials_lib.SEED_KEYS]


def write_csv(rows: Sequence[dict[str, Any]], path: pathlib.Path, metric: str) -> None:
  keys = override_keys(rows)
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(["trial", *keys, "status", f"final {metric}", f"best {metric}", "step", "wall_secs", "error"])
  for row in rows:
    writer.writerow([row["trial"], *[_cell(row["overrides"].get(k, "")) for k in keys], row["status"],
                     _cell(row["final"]), _cell(row["best"]), row["step"], _cell(row["wall_secs"]), row["error"]])
  tmp = path.with_suffix(".csv.tmp")
  tmp.write_text(buffer.getvalue())
  os.replace(tmp, path)


def _cell(value: Any) -> Any:
  if value is None:
    return ""
  if isinstance(value, (list, tuple, dict)):
    return json.dumps(value)
  return value


def _fmt(value: Any) -> str:
  if value is None:
    return "-"
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value)


def _status_summary(statuses: Sequence[str]) -> str:
  counts: dict[str, int] = {}
  for status in statuses:
    counts[status] = counts.get(status, 0) + 1
  if len(counts) == 1 and len(statuses) == 1:
    return statuses[0]
  return ", ".join(f"{n} {s}" for s, n in counts.items())


def group_by_seed(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """Trials that differ only in their seed keys, with mean and std of the final value."""
  seeds = seed_keys(rows)
  groups: dict[str, dict[str, Any]] = {}
  for row in rows:
    rest = {k: v for k, v in row["overrides"].items() if k not in seeds}
    key = json.dumps(rest, sort_keys=True, default=str)
    group = groups.setdefault(key, {"overrides": rest, "trials": [], "statuses": [], "values": []})
    group["trials"].append(row["trial"])
    group["statuses"].append(row["status"])
    if row["final"] is not None:
      group["values"].append(row["final"])
  for group in groups.values():
    values = group["values"]
    group["mean"] = statistics.fmean(values) if values else None
    group["std"] = statistics.stdev(values) if len(values) > 1 else None
  return list(groups.values())


def _sort_key(value: float | None, mode: str) -> tuple[int, float]:
  if value is None:
    return (1, 0.0)
  return (0, -value if mode == "max" else value)


def table(rows: Sequence[dict[str, Any]], metric: str, mode: str | None = None, *, title: str = "") -> str:
  """The trials (or seed groups) sorted from best to worst by the final target value."""
  mode = mode or metric_mode(metric)
  keys = [k for k in swept_keys(rows) if k not in trials_lib.SEED_KEYS]
  seeds = seed_keys(rows)
  direction = "higher" if mode == "max" else "lower"
  lines = [title] if title else []
  lines.append(f"target: final {metric} ({direction} is better)" + ("" if seeds else "; best = best value during the run"))
  if seeds:
    header = ["trials", *keys, f"{metric} mean ± std", "n", "status"]
    body = []
    groups = sorted(group_by_seed(rows), key=lambda g: _sort_key(g["mean"], mode))
    for group in groups:
      mean = "-" if group["mean"] is None else (
          f"{group['mean']:.4g} ± {group['std']:.2g}" if group["std"] is not None else f"{group['mean']:.4g} ± -")
      body.append([",".join(map(str, group["trials"])), *[_fmt(group["overrides"].get(k)) for k in keys], mean,
                   str(len(group["values"])), _status_summary(group["statuses"])])
    lines.append(f"seeds ({', '.join(seeds)}) are averaged over, not tuned: mean ± sample std over the seeds "
                 "that finished with a value")
  else:
    header = ["trial", *keys, f"final {metric}", "best", "step", "status"]
    body = [[str(r["trial"]), *[_fmt(r["overrides"].get(k)) for k in keys], _fmt(r["final"]), _fmt(r["best"]),
             str(r["step"]), r["status"]] for r in sorted(rows, key=lambda r: _sort_key(r["final"], mode))]
  widths = [max(len(str(c)) for c in column) for column in zip(header, *body)]
  lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
  lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
  counts: dict[str, int] = {}
  for row in rows:
    counts[row["status"]] = counts.get(row["status"], 0) + 1
  lines.append(f"{len(rows)} trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
  return "\n".join(lines)


def numeric_axes(rows: Sequence[dict[str, Any]]) -> list[str]:
  """Swept keys other than seeds whose values are all numbers (they get a panel in sweep.png)."""
  out = []
  for key in swept_keys(rows):
    if key in trials_lib.SEED_KEYS or key == algebra.CONFIG_ARG_KEY:
      continue
    values = [r["overrides"].get(key) for r in rows]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
      out.append(key)
  return out


def is_log_spaced(values: Sequence[float]) -> bool:
  """Our rule for a log x axis: all values positive and spanning at least a factor of 10."""
  return bool(values) and min(values) > 0 and max(values) / min(values) >= 10


def plot(rows: Sequence[dict[str, Any]], path: pathlib.Path, metric: str, mode: str | None = None) -> bool:
  """sweep.png: the final target value against each swept numeric axis; False when there is none."""
  axes_keys = numeric_axes(rows)
  if not axes_keys:
    return False
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  mode = mode or metric_mode(metric)
  fig, axes = plt.subplots(1, len(axes_keys), figsize=(4.2 * len(axes_keys), 3.6), squeeze=False)
  groups = group_by_seed(rows) if seed_keys(rows) else None
  for ax, key in zip(axes[0], axes_keys):
    done = [(r["overrides"][key], r["final"]) for r in rows if r["final"] is not None]
    if done:
      ax.plot([x for x, _ in done], [y for _, y in done], "o", alpha=0.4 if groups else 0.8, markersize=4,
              label="trial")
    if groups:
      points = sorted((g["overrides"][key], g["mean"], g["std"] or 0.0) for g in groups if g["mean"] is not None)
      if points:
        ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], fmt="s",
                    markersize=5, capsize=3, label="mean ± std over seeds")
    failed = [r["overrides"][key] for r in rows if r["status"] in ("diverged", "failed")]
    for x in failed:
      ax.axvline(x, color="red", alpha=0.25, linewidth=1)
    if is_log_spaced([r["overrides"][key] for r in rows]):
      ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(f"final {metric} ({'higher' if mode == 'max' else 'lower'} is better)")
    if failed:
      ax.plot([], [], color="red", alpha=0.4, label="diverged/failed")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True


def report(workdir: pathlib.Path, trials: Sequence[trials_lib.Trial], *, metric: str | None = None,
           mode: str | None = None, make_plot: bool = True) -> str:
  """Writes results.csv (and sweep.png) in `workdir` and returns the printed table."""
  metric = metric or target_metric(trials)
  mode = mode or metric_mode(metric)
  rows = collect(trials, metric, mode)
  write_csv(rows, workdir / RESULTS_FILE, metric)
  if make_plot:
    plot(rows, workdir / PLOT_FILE, metric, mode)
  return table(rows, metric, mode, title=f"paperlab.sweep: {workdir}")
