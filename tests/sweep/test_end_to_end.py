"""The real command line: a local sweep killed with SIGKILL and rerun, with a diverging and a failing trial."""
import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from paperlab import metrics as metrics_lib
from paperlab.sweep import cli

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY = str(pathlib.Path(__file__).resolve().parent / "tiny_config.py")


def wait_for(predicate, proc, timeout=180):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.01)
  raise AssertionError("timed out")


@pytest.mark.slow
def test_killed_sweep_reruns_idempotently_and_failures_do_not_stop_the_others(tmp_path):
  # A config whose get_sweep has a trial that diverges, a long one (killed mid-run) and one that fails
  # on a bad value.
  config = tmp_path / "sweep_config.py"
  config.write_text(
      "import importlib.util\n"
      f"spec = importlib.util.spec_from_file_location('tiny', {TINY!r})\n"
      "tiny = importlib.util.module_from_spec(spec); spec.loader.exec_module(tiny)\n"
      "get_config = tiny.get_config\n"
      "def get_sweep(arg=None):\n"
      "  return [{'seed': 0, 'optim.lr': 2.0**100},\n"
      "          {'seed': 1, 'total_steps': 2000, 'ckpt_every': 100, 'eval_every': 1000, 'model.width': 64},\n"
      "          {'seed': 2, 'model.activation': 'nope'}]\n")
  workdir = tmp_path / "sweep"
  command = [sys.executable, "-m", "paperlab.sweep", "--config", str(config), "--workdir", str(workdir)]
  env = {**os.environ, "XLA_FLAGS": ""}  # one CPU device per trial process

  proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
  ckpts = workdir / "trial_001" / "checkpoints"
  wait_for(lambda: ckpts.exists() and any(p.name.isdigit() and int(p.name) >= 100 for p in ckpts.iterdir()), proc)
  os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its trial processes, as a lost machine would
  proc.communicate()
  assert json.loads((workdir / "trial_000" / "meta.json").read_text())["status"] == "diverged"
  assert json.loads((workdir / "trial_001" / "meta.json").read_text())["status"] == "running"
  assert not (workdir / "trial_002" / "meta.json").exists()
  finished_files = {p: p.stat().st_mtime_ns for p in (workdir / "trial_000").iterdir() if p.is_file()}

  rerun = subprocess.run([*command, "--parallel", "2"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
  assert rerun.returncode == 1, rerun.stderr  # one trial failed; the other ran to the end beside it
  assert "1 already finished, skipped; 2 to run" in rerun.stdout
  assert "trial(s) failed: [2]" in rerun.stderr
  assert {p: p.stat().st_mtime_ns for p in (workdir / "trial_000").iterdir() if p.is_file()} == finished_files

  metas = [json.loads((workdir / f"trial_00{i}" / "meta.json").read_text()) for i in range(3)]
  assert [m["status"] for m in metas] == ["diverged", "done", "failed"]
  assert "non-finite" in metas[0]["error"]
  assert len(metas[1]["resumed_from"]) == 1 and metas[1]["resumed_from"][0] >= 100  # resumed, not restarted
  rows = metrics_lib.read_jsonl(workdir / "trial_001" / "metrics.jsonl")
  assert [r["step"] for r in rows if "train/loss" in r] == list(range(10, 2001, 10))  # no gap, no duplicate
  assert metas[2]["error"] == ("paperlab.run: error: model.activation='nope' is not valid for model 'mlp'; valid: "
                               "relu, gelu, silu, tanh, sigmoid, elu, leaky_relu, identity")
  assert "1 done, 0 running, 1 failed, 1 diverged" in rerun.stdout  # the sweep-level progress line

  with open(workdir / "results.csv") as f:
    table = list(csv.DictReader(f))
  assert [r["status"] for r in table] == ["diverged", "done", "failed"]
  assert float(table[1]["final eval/accuracy"]) > 0.5 and table[1]["step"] == "2000"

  # A third run has nothing to do but the failed trial.
  assert cli.main(["--config", str(config), "--workdir", str(workdir), "--launcher", "print"]) == 0
