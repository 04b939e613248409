"""metrics.jsonl writer, resume truncation, summary table and plot."""
import json

from paperlab import metrics


def test_jsonl_round_trip_and_truncate(tmp_path):
  path = tmp_path / "metrics.jsonl"
  w = metrics.JsonlWriter(path)
  for step in (10, 20, 30):
    w.write(step, {"train/loss": 1.0 / step})
  w.write(20, {"eval/accuracy": 0.5})
  w.close()
  rows = metrics.read_jsonl(path)
  assert [r["step"] for r in rows] == [10, 20, 30, 20]
  w.truncate_after(20)
  assert [r["step"] for r in metrics.read_jsonl(path)] == [10, 20, 20]


def test_non_finite_values_are_kept_visible(tmp_path):
  w = metrics.JsonlWriter(tmp_path / "m.jsonl")
  w.write(1, {"train/loss": float("nan")})
  w.close()
  assert json.loads((tmp_path / "m.jsonl").read_text())["train/loss"] == "nan"


def test_cut_line_is_dropped(tmp_path):
  """A kill mid-write leaves a partial last line; reading stops there instead of failing."""
  path = tmp_path / "m.jsonl"
  path.write_text('{"step": 1, "train/loss": 2.0}\n{"step": 2, "train/lo')
  assert metrics.read_jsonl(path) == [{"step": 1, "train/loss": 2.0}]


def test_summary_table_reports_last_and_best():
  rows = [{"step": 1, "eval/accuracy": 0.5, "eval/loss": 2.0}, {"step": 2, "eval/accuracy": 0.4, "eval/loss": 1.0}]
  table = metrics.summary_table(rows, title="t")
  acc_line = next(line for line in table.splitlines() if "eval/accuracy" in line)
  assert acc_line.split()[-2:] == ["0.4", "0.5"]  # last, best (max for accuracy)
  loss_line = next(line for line in table.splitlines() if "eval/loss" in line)
  assert loss_line.split()[-2:] == ["1", "1"]  # best is the min for losses


def test_plot_writes_png(tmp_path):
  rows = [{"step": s, "train/loss": 1.0 / s, "train/accuracy": s / 10} for s in range(1, 10)]
  rows.append({"step": 9, "eval/loss": 0.2, "eval/accuracy": 0.9})
  metrics.plot(rows, tmp_path / "m.png", metric="accuracy")
  assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
