"""results.csv, the printed table (ranking, mean ± std over seeds) and sweep.png, from hand-made trial dirs."""
import csv
import json
import pathlib
import re
import statistics

import pytest

from paperlab.sweep import cli, results
from paperlab.sweep import trials as trials_lib

LRS = (1e-3, 1e-2, 1e-1)
SEEDS = (0, 1, 2)
# Final eval accuracy of trial (lr, seed); lr=1e-1 seed 2 diverged before its first eval.
FINAL = {(1e-3, 0): 0.70, (1e-3, 1): 0.74, (1e-3, 2): 0.72,
         (1e-2, 0): 0.90, (1e-2, 1): 0.86, (1e-2, 2): 0.91,
         (1e-1, 0): 0.40, (1e-1, 1): 0.50}


def make_sweep(root: pathlib.Path, metric: str = "eval/accuracy") -> list[trials_lib.Trial]:
  overrides = [{"optim.lr": lr, "seed": s} for lr in LRS for s in SEEDS]
  trials = trials_lib.prepare(root, "configs/x.py", overrides)
  for trial in trials:
    key = (trial.overrides["optim.lr"], trial.overrides["seed"])
    meta = {"start_time": "2026-01-01T10:00:00+00:00", "end_time": "2026-01-01T10:01:30+00:00"}
    rows = [{"step": 10, "train/loss": 1.0}]
    if key in FINAL:
      meta.update(status="done", step=100)
      rows += [{"step": 50, metric: FINAL[key] + 0.05}, {"step": 100, metric: FINAL[key]}]  # best is not last
    else:
      meta.update(status="diverged", step=7, error="training diverged: non-finite loss at step 7")
    trials_lib.write_json(trial.workdir / "meta.json", meta)
    (trial.workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    trials_lib.write_json(trial.workdir / "config.json", {"target_metric": metric})
  return trials


def test_metric_mode_by_name():
  assert results.metric_mode("eval/accuracy") == "max"
  assert results.metric_mode("eval/top1_acc") == "max"
  assert results.metric_mode("eval/loss") == "min"
  assert results.metric_mode("eval/mse") == "min"
  assert results.metric_mode("eval/error_rate") == "min"


def test_results_csv_has_one_row_per_trial(tmp_path):
  trials = make_sweep(tmp_path)
  results.report(tmp_path, trials)
  with open(tmp_path / "results.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 9
  assert list(rows[0]) == ["trial", "optim.lr", "seed", "status", "final eval/accuracy", "best eval/accuracy",
                           "step", "wall_secs", "error"]
  by_trial = {int(r["trial"]): r for r in rows}
  assert float(by_trial[4]["final eval/accuracy"]) == pytest.approx(0.86)
  assert float(by_trial[4]["best eval/accuracy"]) == pytest.approx(0.91)
  assert float(by_trial[4]["wall_secs"]) == 90.0 and by_trial[4]["step"] == "100"
  assert by_trial[8]["status"] == "diverged" and by_trial[8]["final eval/accuracy"] == ""
  assert "non-finite" in by_trial[8]["error"]


def test_table_averages_seeds_and_ranks_by_mean(tmp_path):
  trials = make_sweep(tmp_path)
  text = results.report(tmp_path, trials)
  lines = text.splitlines()
  assert any("seeds (seed) are averaged over, not tuned" in line for line in lines)
  header = next(i for i, line in enumerate(lines) if line.startswith("trials"))
  body = lines[header + 1:header + 4]
  assert [line.split()[1] for line in body] == ["0.01", "0.001", "0.1"]  # ranked by mean, higher first
  for line, lr in zip(body, (1e-2, 1e-3, 1e-1)):
    values = [FINAL[(lr, s)] for s in SEEDS if (lr, s) in FINAL]
    assert f"{statistics.fmean(values):.4g} ± {statistics.stdev(values):.2g}" in line
    columns = re.split(r"\s{2,}", line)
    assert columns[3] == str(len(values))
  assert re.split(r"\s{2,}", body[2])[4] == "2 done, 1 diverged"
  assert lines[-1] == "9 trials: 1 diverged, 8 done"


def test_lower_is_better_for_a_loss_and_mode_override(tmp_path):
  trials = make_sweep(tmp_path, metric="eval/loss")
  rows = results.collect(trials, "eval/loss")
  assert rows[0]["best"] == pytest.approx(0.70)  # min over the run for a loss
  text = results.table(rows, "eval/loss")
  body = text.splitlines()[3:6]
  assert [line.split()[1] for line in body] == ["0.1", "0.001", "0.01"]
  text = results.table(rows, "eval/loss", mode="max")
  assert [line.split()[1] for line in text.splitlines()[3:6]] == ["0.01", "0.001", "0.1"]


def test_table_without_seed_axis_lists_trials(tmp_path):
  trials = trials_lib.prepare(tmp_path, "configs/x.py", [{"optim.lr": lr} for lr in (0.1, 0.2)])
  for trial, value in zip(trials, (0.3, 0.6)):
    trials_lib.write_json(trial.workdir / "meta.json", {"status": "done", "step": 5})
    (trial.workdir / "metrics.jsonl").write_text(json.dumps({"step": 5, "eval/accuracy": value}) + "\n")
  text = results.table(results.collect(trials, "eval/accuracy"), "eval/accuracy")
  assert "averaged" not in text
  first = text.splitlines()[2]
  assert first.split()[:3] == ["1", "0.2", "0.6"]


def test_sweep_png_and_log_axis_rule(tmp_path):
  trials = make_sweep(tmp_path)
  results.report(tmp_path, trials)
  assert (tmp_path / "sweep.png").stat().st_size > 1000
  assert results.numeric_axes(results.collect(trials, "eval/accuracy")) == ["optim.lr"]  # the seed gets no panel
  assert results.is_log_spaced([1e-3, 1e-2, 1e-1])
  assert not results.is_log_spaced([0.1, 0.5, 0.9])
  assert not results.is_log_spaced([0.0, 1e-4, 1e-3])


def test_results_flag_prints_the_table_at_any_time(tmp_path, capsys):
  make_sweep(tmp_path)
  trials_lib.write_json(tmp_path / "trial_000" / "meta.json", {"status": "running",
                                                               "start_time": "2026-01-01T10:00:00+00:00"})
  assert cli.main(["--results", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert "1 running" in out and (tmp_path / "results.csv").exists()
  with pytest.raises(SystemExit):
    cli.main(["--results", str(tmp_path / "nope")])
  assert "is not a sweep directory" in capsys.readouterr().err
