"""End-to-end trainer tests: outputs of a run, exact resume after SIGKILL, SIGTERM, divergence, bad
input, and data parallelism over fake devices."""
import dataclasses
import json
import os
import shutil
import pathlib
import signal
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

from paperlab import checkpoint as checkpoint_lib
from paperlab import config as config_lib
from paperlab import metrics as metrics_lib
from paperlab import train
from paperlab.errors import ConfigError
from paperlab.optim import tract_sees_raw_gradient

REPO = pathlib.Path(__file__).resolve().parent.parent


def small_config(**overrides):
  config = config_lib.load(str(REPO / "configs/quickstart.py"))
  config.total_steps = 60
  config.log_every = 10
  config.eval_every = 30
  config.ckpt_every = 30
  config.model.width = 32
  config.optim.warmup_steps = 10
  config.log.progress = False
  config.log.plot = False
  for key, value in overrides.items():
    config_lib.set_path(config, key, value)
  return config


def comparable(rows):
  return [{k: v for k, v in r.items() if k not in metrics_lib.TIMING_FIELDS} for r in rows]


def test_run_writes_every_output(tmp_path):
  config = small_config(**{"log.plot": True})
  summary = train.train_and_evaluate(config, tmp_path)
  assert summary["status"] == "done" and summary["step"] == 60
  names = {p.name for p in tmp_path.iterdir()}
  assert {"config.json", "meta.json", "metrics.jsonl", "checkpoints", "metrics.png"} <= names
  meta = json.loads((tmp_path / "meta.json").read_text())
  assert meta["status"] == "done" and meta["resumed_from"] == [] and meta["versions"]["jax"] == jax.__version__
  assert meta["devices"] and meta["start_time"] and meta["end_time"]
  rows = metrics_lib.read_jsonl(tmp_path / "metrics.jsonl")
  train_rows = [r for r in rows if "train/loss" in r]
  assert [r["step"] for r in train_rows] == [10, 20, 30, 40, 50, 60]
  for key in ("train/loss", "train/accuracy", "train/grad_norm", "train/param_norm", "train/update_norm",
              "train/lr", "train/steps_per_sec", "train/examples_per_sec"):
    assert key in train_rows[0], key
  assert sum("compile_secs" in r for r in rows) == 1
  assert train_rows[-1]["train/loss"] < train_rows[0]["train/loss"]
  eval_rows = [r for r in rows if "eval/accuracy" in r]
  assert [r["step"] for r in eval_rows] == [30, 60]
  assert json.loads((tmp_path / "config.json").read_text())["model"]["width"] == 32
  # Rerunning a finished run is a no-op that keeps its results.
  again = train.train_and_evaluate(config, tmp_path)
  assert again["step"] == 60
  assert comparable(metrics_lib.read_jsonl(tmp_path / "metrics.jsonl")) == comparable(rows)


def test_different_config_never_touches_the_workdir(tmp_path):
  train.train_and_evaluate(small_config(total_steps=30), tmp_path)
  before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
  with pytest.raises(ConfigError, match="holds a run of a different config.*optim.lr"):
    train.train_and_evaluate(small_config(**{"optim.lr": 0.5}), tmp_path)
  assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = small_config(**{"optim.name": "sgd", "optim.lr": 1e6, "optim.schedule": "constant",
                           "ckpt_every": 1, "model.width": 256})
  with pytest.raises(train.Diverged, match=r"non-finite .* at step \d+ \(last good checkpoint: step \d+\)") as info:
    train.train_and_evaluate(config, tmp_path)
  meta = json.loads((tmp_path / "meta.json").read_text())
  assert meta["status"] == "diverged"
  ckpt = checkpoint_lib.Checkpointer(tmp_path / "checkpoints", max_to_keep=3)
  assert ckpt.steps() and max(ckpt.steps()) == info.value.last_checkpoint < info.value.step
  exp = train.build_experiment(config)
  step, state = ckpt.restore_latest(train.init_state(exp))
  assert step == info.value.last_checkpoint
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))
  # The loop fetches the finite flags in one batch per log step; it must name the same first bad step
  # as checking after every step (above: ckpt_every=1 forces a check each step).
  config_lib.set_path(config, "ckpt_every", 50)
  with pytest.raises(train.Diverged) as batched:
    train.train_and_evaluate(config, tmp_path / "batched")
  assert batched.value.step == info.value.step and batched.value.last_checkpoint is None


def test_data_parallel_matches_single_device(tmp_path):
  assert jax.device_count() == 8, "conftest sets 8 fake CPU devices"
  losses = {}
  for devices in (1, 8):
    config = small_config(**{"mesh.data": devices, "total_steps": 20, "log_every": 5, "eval_every": 20,
                             "ckpt_every": 20})
    train.train_and_evaluate(config, tmp_path / str(devices))
    rows = metrics_lib.read_jsonl(tmp_path / str(devices) / "metrics.jsonl")
    losses[devices] = [r["train/loss"] for r in rows if "train/loss" in r]
  np.testing.assert_allclose(losses[1], losses[8], rtol=1e-5)


# -- Subprocess tests: the real command line, real signals ------------------------------------------

def run_cli(*args, workdir, timeout=120, wait=True):
  cmd = [sys.executable, "-m", "paperlab.run", "--config", str(REPO / "configs/quickstart.py"),
         "--workdir", str(workdir), "--config.log.progress=False", "--config.log.plot=False", *args]
  env = {**os.environ, "XLA_FLAGS": ""}
  if not wait:
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


LONG_RUN = ("--config.total_steps=400", "--config.ckpt_every=40", "--config.log_every=20", "--config.eval_every=200",
            "--config.model.width=1024", "--config.model.depth=3")


def wait_for_checkpoint(workdir: pathlib.Path, proc, min_step: int, timeout: float = 120) -> None:
  deadline = time.time() + timeout
  while time.time() < deadline:
    ckpts = workdir / "checkpoints"
    if ckpts.exists() and any(p.name.isdigit() and int(p.name) >= min_step for p in ckpts.iterdir()):
      return
    assert proc.poll() is None, proc.stderr.read()
    time.sleep(0.01)
  raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(tmp_path):
  reference = run_cli(*LONG_RUN, workdir=tmp_path / "ref")
  assert reference.returncode == 0, reference.stderr
  proc = run_cli(*LONG_RUN, workdir=tmp_path / "killed", wait=False)
  wait_for_checkpoint(tmp_path / "killed", proc, 80)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert json.loads((tmp_path / "killed/meta.json").read_text())["status"] == "running"  # really interrupted
  resumed = run_cli(*LONG_RUN, workdir=tmp_path / "killed")
  assert resumed.returncode == 0, resumed.stderr
  assert "resuming from step" in resumed.stdout
  meta = json.loads((tmp_path / "killed/meta.json").read_text())
  assert meta["status"] == "done" and len(meta["resumed_from"]) == 1
  ref_rows = comparable(metrics_lib.read_jsonl(tmp_path / "ref/metrics.jsonl"))
  assert comparable(metrics_lib.read_jsonl(tmp_path / "killed/metrics.jsonl")) == ref_rows
  config = config_lib.load(str(REPO / "configs/quickstart.py"))
  config_lib.set_path(config, "model.width", 1024)
  config_lib.set_path(config, "model.depth", 3)
  target = train.init_state(train.build_experiment(config))
  states = [checkpoint_lib.Checkpointer(tmp_path / name / "checkpoints", max_to_keep=3).restore_latest(target)
            for name in ("ref", "killed")]
  assert states[0][0] == states[1][0] == 400
  chex.assert_trees_all_equal(states[0][1].params, states[1][1].params)
  chex.assert_trees_all_equal(states[0][1].opt_state, states[1][1].opt_state)


@pytest.mark.slow
def test_sigterm_saves_and_marks_preempted(tmp_path):
  proc = run_cli(*LONG_RUN, workdir=tmp_path, wait=False)
  wait_for_checkpoint(tmp_path, proc, 40)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == 0, err
  meta = json.loads((tmp_path / "meta.json").read_text())
  assert meta["status"] == "preempted", meta
  assert "saved checkpoint at step" in out
  assert meta["last_checkpoint"] == meta["step"] and meta["step"] < 400
  assert meta["last_checkpoint"] in checkpoint_lib.Checkpointer(tmp_path / "checkpoints", max_to_keep=3).steps()


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (("--config.optim.lrr=0.1",), "unknown config field 'optim.lrr'; valid fields of optim:"),
    (("--config.total_steps=abc",), "bad value 'abc' for config field 'total_steps'"),
    (("--config.model.name=resnet9000",), "unknown model 'resnet9000'; valid:"),
    (("--config.data.name=imagenet2",), "unknown data source 'imagenet2'; valid: digits"),
    (("--config.optim.name=adamx",), "unknown optimizer 'adamx'; valid:"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, message):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "keep.txt").write_text("untouched")
  result = run_cli(*args, workdir=workdir)
  assert result.returncode == 2, result.stderr
  assert "Traceback" not in result.stderr
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and message in lines[0], result.stderr
  assert [p.name for p in workdir.iterdir()] == ["keep.txt"]


@pytest.mark.slow
def test_missing_config_file_exits_2(tmp_path):
  result = subprocess.run([sys.executable, "-m", "paperlab.run", "--config", "configs/nope.py"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 2 and "config file not found: configs/nope.py" in result.stderr
  assert "Traceback" not in result.stderr


def test_corrupt_latest_checkpoint_resumes_from_previous_and_ends_identical(tmp_path, capsys):
  config = small_config(ckpt_every=20, max_to_keep=5)
  train.train_and_evaluate(config, tmp_path / "ref")
  # A run of the same config that stopped after its step-40 save, whose step-40 checkpoint then rotted.
  shutil.copytree(tmp_path / "ref", tmp_path / "run")
  shutil.rmtree(tmp_path / "run/checkpoints/60")
  for f in (tmp_path / "run/checkpoints/40").rglob("*"):
    if f.is_file():
      f.write_bytes(b"\x00")  # the latest checkpoint is now unreadable
  summary = train.train_and_evaluate(config, tmp_path / "run")
  out = capsys.readouterr().out
  assert "checkpoint at step 40 is corrupt" in out and "resuming from step 20" in out
  assert summary["step"] == 60
  assert json.loads((tmp_path / "run/meta.json").read_text())["resumed_from"] == [20]
  ref = comparable(metrics_lib.read_jsonl(tmp_path / "ref/metrics.jsonl"))
  assert comparable(metrics_lib.read_jsonl(tmp_path / "run/metrics.jsonl")) == ref


def test_tensorboard_mirror(tmp_path):
  train.train_and_evaluate(small_config(total_steps=20, **{"log.tensorboard": True}), tmp_path)
  events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
  assert events and events[0].stat().st_size > 0


# TrAct from the first layer's dL/dz (optim/tract.py, `tract_output_grads`).
@pytest.mark.parametrize("batch_size", [32, 128])  # digits: n = 64, so push-through, then direct
def test_tract_from_output_grads_matches_the_gradient_path(batch_size):
  config = small_config(**{"optim.tract_lam": 0.1, "batch_size": batch_size, "log_every": 1})
  exp = train.build_experiment(config)
  assert "tract_output_grads" in exp.extra_args
  via_kernel_grad = dataclasses.replace(exp, extra_args=exp.extra_args - {"tract_output_grads"})
  results = []
  for e in (exp, via_kernel_grad):
    step = jax.jit(train.make_train_step(e))
    state, metrics = step(train.init_state(e), e.source.device_data)
    state, metrics = step(state, e.source.device_data)   # a second step: AdamW moments in play
    results.append((state.params, metrics))
  (params_a, metrics_a), (params_b, metrics_b) = results
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), params_a, params_b)
  for key in ("loss", "grad_norm", "update_norm"):
    np.testing.assert_allclose(metrics_a[key], metrics_b[key], rtol=1e-5)
  assert float(metrics_a["grad_norm"]) > 0


def test_output_grads_path_only_when_tract_sees_the_raw_gradient():
  assert tract_sees_raw_gradient(small_config(**{"optim.tract_lam": 0.1}).optim)
  for extra in ({"optim.clip_norm": 1.0}, {"optim.grad_noise_eta": 0.01}):
    config = small_config(**{"optim.tract_lam": 0.1, **extra})
    assert not tract_sees_raw_gradient(config.optim)
    exp = train.build_experiment(config)
    assert "tract_inputs" in exp.extra_args and "tract_output_grads" not in exp.extra_args


def test_fetch_for_host_returns_every_flag_and_metric():
  jnp = jax.numpy
  flags = [jnp.asarray(True), jnp.asarray(False), jnp.asarray(True)]
  metrics = {"loss": jnp.float32(1.5), "accuracy": jnp.float32(0.25), "finite": jnp.asarray(True)}
  got_flags, got_metrics = train.fetch_for_host(flags, metrics)
  assert got_flags == [True, False, True]
  assert got_metrics == {"accuracy": 0.25, "finite": 1.0, "loss": 1.5}
  assert train.fetch_for_host(flags[:1], None) == ([True], {})
  assert train.fetch_for_host([], None) == ([], {})


def test_compiled_steps_report_norms_on_reported_steps_and_match_the_cond_step():
  config = small_config(log_every=5)
  exp = train.build_experiment(config)
  data = exp.source.device_data
  step_for = train.compile_train_steps(exp, train.init_state(exp), data)
  cond_step = jax.jit(train.make_train_step(exp))  # report=None: decided on device
  state_a = state_b = train.init_state(exp)
  for n in range(1, 7):
    state_a, metrics_a = step_for(n)(state_a, data)
    state_b, metrics_b = cond_step(state_b, data)
    assert (float(metrics_a["grad_norm"]) > 0) == (n == 5), n   # log_every = 5
    np.testing.assert_allclose(metrics_a["grad_norm"], metrics_b["grad_norm"], rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               state_a.params, state_b.params)
