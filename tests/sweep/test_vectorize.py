"""--vectorize: grouping, trial layout over devices, and vectorized == one-by-one per-trial metrics."""
import json
import pathlib

import jax
import numpy as np
import pytest

from paperlab import metrics as metrics_lib
from paperlab import train
from paperlab.data import digits
from paperlab.sweep import trials as trials_lib
from paperlab.sweep import vectorize

TINY = str(pathlib.Path(__file__).resolve().parent / "tiny_config.py")


@pytest.fixture(scope="module")
def loader():
  return trials_lib.ConfigLoader(TINY)


def test_groups_split_on_shapes_and_code_paths(tmp_path, loader):
  overrides = [
      {"optim.lr": 0.01, "seed": 0},                               # 0: group A
      {"optim.lr": 0.02, "seed": 1, "optim.weight_decay": 0.1},    # 1: A (injected numbers and a seed)
      {"optim.lr": 0.01, "model.width": 32},                       # 2: B (a shape)
      {"optim.lr": 0.01, "optim.name": "sgd"},                     # 3: C (another optimizer)
      {"data.seed": 1},                                            # 4: D (other batches)
      {"optim.grad_noise_eta": 0.01},                              # 5: E (switches a part of the chain on)
      {"optim.grad_noise_eta": 0.1, "seed": 3},                    # 6: E
      {"optim.warmup_steps": 10},                                  # 7: F (not injected: the schedule's shape)
      {"optim.b1": 0.5, "model.width": 32},                        # 8: B
  ]
  trials = trials_lib.prepare(tmp_path, TINY, overrides)
  groups = vectorize.group_trials(loader, trials)
  assert [[t.index for t in g.trials] for g in groups] == [[0, 1], [2, 8], [3], [4], [5, 6], [7]]
  assert groups[0].varying == ["optim.lr", "optim.weight_decay", "seed"]
  assert groups[1].shared == {"model.width": 32} and groups[1].varying == ["optim.b1", "optim.lr"]
  text = vectorize.describe(groups)
  assert "9 trial(s) in 6 group(s)" in text
  assert "group 1: trials [2,8] vary optim.b1, optim.lr; fixed model.width=32" in text


@pytest.mark.parametrize("trials, devices, expected", [
    (4, 8, (4, 4)), (16, 8, (8, 16)), (10, 8, (5, 10)), (17, 8, (6, 18)), (3, 1, (1, 3)), (1, 8, (1, 1))])
def test_trial_layout_keeps_load_minimal_with_least_padding(trials, devices, expected):
  used, padded = vectorize.trial_layout(trials, devices)
  assert (used, padded) == expected
  assert used <= devices and padded >= trials and padded % used == 0
  assert padded // used == -(-trials // devices)  # the minimal number of trials per device


def comparable(rows):
  return [{k: v for k, v in r.items() if k not in metrics_lib.TIMING_FIELDS} for r in rows]


def assert_rows_close(got, want, rtol):
  assert [sorted(r) for r in got] == [sorted(r) for r in want]
  for g, w in zip(got, want):
    assert g["step"] == w["step"]
    np.testing.assert_allclose([g[k] for k in sorted(g)], [w[k] for k in sorted(w)], rtol=rtol, atol=1e-7,
                               err_msg=f"step {g['step']}")


OVERRIDES = [{"optim.lr": 2.0**-9, "seed": 0}, {"optim.lr": 2.0**-7, "seed": 1},
             {"optim.lr": 2.0**100, "seed": 0}]  # the last one diverges within a few steps


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, loader):
  """Each trial run by itself with train_and_evaluate (data-parallel over the 8 fake devices)."""
  root = tmp_path_factory.mktemp("sequential")
  out = []
  for i, overrides in enumerate(OVERRIDES):
    workdir = root / str(i)
    try:
      train.train_and_evaluate(loader.trial_config(overrides), workdir)
      diverged_at = None
    except train.Diverged as error:
      diverged_at = error.step
    out.append((workdir, diverged_at))
  return out


@pytest.mark.parametrize("on_device", [True, False], ids=["on_device_data", "host_batches"])
def test_vectorized_trials_equal_trials_run_one_by_one(tmp_path, loader, sequential, monkeypatch, on_device):
  assert jax.device_count() == 8
  if not on_device:  # the path of streaming sources: one host batch per step, handed to the program
    monkeypatch.setattr(digits.DigitsSource, "on_device", False)
  # A fourth trial fails to build (its own group): recorded as failed, the others go on.
  trials = trials_lib.prepare(tmp_path, TINY, OVERRIDES + [{"model.activation": "nope"}])
  statuses = vectorize.run(loader, trials)
  assert statuses == {0: "done", 1: "done", 2: "diverged", 3: "failed"}
  assert "model.activation='nope' is not valid" in json.loads((trials[3].workdir / "meta.json").read_text())["error"]
  for trial, (ref_dir, diverged_at) in zip(trials, sequential):
    meta = json.loads((trial.workdir / "meta.json").read_text())
    ref_meta = json.loads((ref_dir / "meta.json").read_text())
    assert meta["status"] == ref_meta["status"]
    assert json.loads((trial.workdir / "config.json").read_text()) == json.loads((ref_dir / "config.json").read_text())
    assert meta["vectorized"]["devices"] == 3 and len(meta["devices"]) == 3  # the trial axis sharded over 3
    rows = metrics_lib.read_jsonl(trial.workdir / "metrics.jsonl")
    ref_rows = metrics_lib.read_jsonl(ref_dir / "metrics.jsonl")
    if diverged_at is None:
      assert meta["step"] == 40 and len(ref_rows) == 6
    else:
      assert meta["step"] == diverged_at and "non-finite" in meta["error"]
    assert_rows_close(comparable(rows), comparable(ref_rows), rtol=2e-5)
    assert sum("compile_secs" in r for r in rows) == (1 if rows else 0)

