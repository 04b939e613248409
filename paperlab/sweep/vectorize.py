"""`--vectorize`: many small trials as one compiled program, the trial axis vmapped.

Trials whose overrides differ only in `seed` and in numeric optimizer hyperparameters that
`paperlab.optim` injects into the optimizer state (lr, weight_decay, b1, grad_noise_eta, ...; see
`optim.injected_fields`) form a group. Any other difference (model width, optimizer name, schedule
length, `data.seed`, the config arg, or a hyperparameter that switches a part of the chain on) starts a
new group; groups run one after the other, and how the trials were grouped is printed.

A group runs as follows. One Experiment is built per distinct seed (model init and the gradient-noise
key depend on `config.seed`), with `inject_hyperparams=True`. Every trial's state is initialized from
its seed's Experiment, its own hyperparameters are written into its optimizer state, and the states
are stacked on a leading trial axis, sharded over the local devices. Each step computes the batch once
(`source.sample(data, step)`) and applies `vmap(update_step, in_axes=(0, None))`: all trials see the
same batches, as they would one by one, because the data order depends on `data.seed` only. Steps
between two log/eval points run inside one `lax.fori_loop` (one dispatch per interval).

A trial whose loss or gradient becomes non-finite at step d is masked out: it is recorded as `diverged`
at step d with the rows before d, as a run by itself would be, and the others go on. Its slot keeps
computing (on NaNs) until the group ends, because the program's shape is fixed; nothing reads it, and
no computation mixes trials. (Freezing the slot with a select on every state leaf cost about 15% of the step
time in our measurement, for no change in any result.)

Numbers. A trial's hyperparameters are float32 arrays here and Python floats in a run by itself. When
a value is not exact in float32 (b1 = 0.9, lr = 1e-3), constants derived from it such as 1 - b1 round
differently in the two, and training amplifies that: about 1e-3 relative in the gradient norm after 60
steps of the quickstart, and final eval accuracies that differ by at most one of the 360 test images
after 1500 steps (scripts/bench_sweep.py, 16 trials). With float32-exact values the per-trial metrics
match one-by-one runs to 2e-5 relative (tests/sweep/test_vectorize.py); what remains is the order of
float reductions.

Each trial's directory gets overrides.json, config.json, meta.json and metrics.jsonl in the normal
format (and metrics.png when config.log.plot). Vectorized groups do not checkpoint: a rerun redoes
the unfinished trials from scratch, deleting what an interrupted attempt left in their directories.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import shutil
import sys
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from paperlab import metrics as metrics_lib
from paperlab import optim as optim_lib
from paperlab import train
from paperlab.errors import ConfigError
from paperlab.sweep import launch
from paperlab.sweep import trials as trials_lib

VECTOR_KEYS_OUTSIDE_OPTIM = ("seed",)
TRIAL_AXIS = "trials"


@dataclasses.dataclass
class Group:
  """Trials that can share one compiled program."""
  trials: list[trials_lib.Trial]
  configs: list[ml_collections.ConfigDict]
  shared: dict[str, Any]        # the overrides every trial of the group has
  varying: list[str]            # the vectorized keys that take more than one value
  injected: tuple[str, ...]     # optimizer fields that live in the optimizer state


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def vector_keys(overrides: dict[str, Any], injected: Sequence[str]) -> set[str]:
  """The keys of `overrides` that may differ inside one vectorized group."""
  keys = set()
  for key, value in overrides.items():
    if key in VECTOR_KEYS_OUTSIDE_OPTIM and _is_number(value):
      keys.add(key)
    elif key.startswith("optim.") and key[len("optim."):] in injected and _is_number(value):
      keys.add(key)
  return keys


def group_trials(loader: trials_lib.ConfigLoader, trials: Sequence[trials_lib.Trial]) -> list[Group]:
  """Splits `trials` into groups that differ only in vectorizable keys (first-appearance order)."""
  groups: dict[str, Group] = {}
  for trial in trials:
    config = loader.trial_config(trial.overrides)
    injected = tuple(optim_lib.injected_fields(config.optim))
    vectorized = vector_keys(trial.overrides, injected)
    rest = {k: v for k, v in trial.overrides.items() if k not in vectorized}
    key = json.dumps([rest, injected], sort_keys=True, default=str)
    group = groups.setdefault(key, Group([], [], rest, [], injected))
    group.trials.append(trial)
    group.configs.append(config)
  for group in groups.values():
    keys = sorted({k for t in group.trials for k in t.overrides} - set(group.shared))
    group.varying = [k for k in keys if len({json.dumps(t.overrides.get(k)) for t in group.trials}) > 1]
  return list(groups.values())


def describe(groups: Sequence[Group]) -> str:
  n = sum(len(g.trials) for g in groups)
  lines = [f"paperlab.sweep --vectorize: {n} trial(s) in {len(groups)} group(s) "
           "(a group shares one program; groups differ in overrides that change shapes or code paths)"]
  for i, group in enumerate(groups):
    indices = ",".join(str(t.index) for t in group.trials)
    shared = ", ".join(f"{k}={v}" for k, v in group.shared.items()) or "(base config)"
    varying = ", ".join(group.varying) or "nothing"
    lines.append(f"  group {i}: trials [{indices}] vary {varying}; fixed {shared}")
  return "\n".join(lines)


def trial_layout(num_trials: int, num_devices: int) -> tuple[int, int]:
  """(devices used, padded trial count): the fewest devices that keep the per-device load minimal."""
  per_device = math.ceil(num_trials / num_devices)
  devices = math.ceil(num_trials / per_device)
  return devices, devices * per_device


def _now() -> str:
  return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _stack(trees: Sequence[Any]) -> Any:
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _reset_trial_dir(trial: trials_lib.Trial) -> None:
  """A vectorized trial starts from scratch: drop what an interrupted attempt left behind."""
  for name in ("metrics.jsonl", "meta.json", "metrics.png", "config.json"):
    (trial.workdir / name).unlink(missing_ok=True)
  shutil.rmtree(trial.workdir / "checkpoints", ignore_errors=True)


class GroupRunner:
  """Builds, compiles and runs one group; writes every trial's workdir."""

  def __init__(self, group: Group, devices: Sequence[jax.Device] | None = None):
    self.group = group
    self.configs = group.configs
    self.config = group.configs[0]
    all_devices = list(devices if devices is not None else jax.devices())
    num_devices, self.padded = trial_layout(len(group.trials), len(all_devices))
    self.mesh = Mesh(np.asarray(all_devices[:num_devices]), (TRIAL_AXIS,))
    single = Mesh(np.asarray(all_devices[:1]), ("data",))  # Experiments only need one for their checks
    self.experiments: dict[int, train.Experiment] = {}
    for config in self.configs:
      if config.seed not in self.experiments:
        self.experiments[config.seed] = train.build_experiment(config, mesh=single, inject_hyperparams=True)
    self.exp = self.experiments[self.config.seed]

  # -- state --------------------------------------------------------------------------------------

  def initial_states(self) -> Any:
    states = []
    for config in self.configs:
      state = train.init_state(self.experiments[config.seed])
      values = {f: float(config.optim[f]) for f in self.group.injected}
      states.append(state._replace(opt_state=optim_lib.set_hyperparams(state.opt_state, **values)))
    states += [states[0]] * (self.padded - len(states))  # padding trials: masked out from the start
    return jax.device_put(_stack(states), NamedSharding(self.mesh, P(TRIAL_AXIS)))

  # -- compiled functions -------------------------------------------------------------------------

  def make_steps(self):
    exp = self.exp
    update = train.make_update_step(exp)
    trial_sharding = NamedSharding(self.mesh, P(TRIAL_AXIS))
    replicated = NamedSharding(self.mesh, P())

    def one_step(step, states, alive, diverged_at, data):
      batch = exp.source.sample(data, step) if exp.source.on_device else data
      batch = jax.lax.with_sharding_constraint(batch, replicated)
      # update_step logs each trial's own lr (optim.current_lr reads the injected one).
      states, metrics = jax.vmap(update, in_axes=(0, None))(states, batch)
      states = jax.lax.with_sharding_constraint(states, trial_sharding)
      diverged_at = jnp.where(alive & ~metrics["finite"], step + 1, diverged_at)
      return states, alive & metrics["finite"], diverged_at, metrics

    def run_interval(states, alive, diverged_at, data, start, stop):
      """Steps start..stop-1; returns (states, alive, diverged_at, metrics of the last step).

      Inside the loop only `finite` is kept, so XLA drops the norms that only the logged step needs."""
      def body(step, carry):
        return one_step(step, *carry, data)[:3]
      carry = jax.lax.fori_loop(start, stop - 1, body, (states, alive, diverged_at))
      return one_step(stop - 1, *carry, data)

    eval_step = jax.vmap(train.make_eval_step(exp), in_axes=(0, 0, None))
    return (jax.jit(run_interval, donate_argnums=(0,)), jax.jit(eval_step))

  # -- the loop -----------------------------------------------------------------------------------

  def run(self, progress=None) -> dict[int, str]:
    group, cfg, exp = self.group, self.config, self.exp
    n = len(group.trials)
    for trial, config in zip(group.trials, self.configs):
      _reset_trial_dir(trial)
      trials_lib.write_json(trial.workdir / "config.json", json.loads(config.to_json_best_effort()))
    metas = [self._start_meta(i) for i in range(n)]
    writers = [metrics_lib.JsonlWriter(t.workdir / "metrics.jsonl") for t in group.trials]
    replicated = NamedSharding(self.mesh, P())
    # On-device sources sample inside the loop; host sources hand over one batch per step.
    host_data = not exp.source.on_device
    data = jax.device_put(exp.source.host_batch(0) if host_data else exp.source.device_data, replicated)
    states = self.initial_states()
    alive = jax.device_put(jnp.arange(self.padded) < n, NamedSharding(self.mesh, P(TRIAL_AXIS)))
    diverged_at = jax.device_put(jnp.zeros(self.padded, jnp.int32), NamedSharding(self.mesh, P(TRIAL_AXIS)))
    total = cfg.total_steps
    if host_data:
      boundaries = list(range(1, total + 1))
    else:
      boundaries = sorted({s for s in range(1, total + 1) if s % cfg.log_every == 0 or s % cfg.eval_every == 0}
                          | {total})
    status = ["running"] * n
    try:
      t0 = time.perf_counter()
      run_interval, eval_step = self.make_steps()
      first_stop = boundaries[0]
      run_interval = run_interval.lower(states, alive, diverged_at, data, 0, first_stop).compile()
      compile_secs = time.perf_counter() - t0
      start, interval_start, first_row = 0, time.perf_counter(), True
      for stop in boundaries:
        if host_data and start > 0:
          data = jax.device_put(exp.source.host_batch(start), replicated)
        states, alive, diverged_at, metrics = run_interval(states, alive, diverged_at, data, start, stop)
        if stop % cfg.log_every == 0 or stop == total:
          metrics, diverged_host = jax.device_get((metrics, diverged_at))
          now = time.perf_counter()
          rate = (stop - start) / max(now - interval_start, 1e-9)
          for i in range(n):
            if diverged_host[i] == 0:
              row = {f"train/{k}": float(v[i]) for k, v in metrics.items() if k != "finite"}
              row["train/steps_per_sec"] = rate
              row["train/examples_per_sec"] = rate * cfg.batch_size
              if first_row:
                row["compile_secs"] = compile_secs
              writers[i].write(stop, row)
          first_row = False
        if stop % cfg.eval_every == 0 or stop == total:
          t_eval = time.perf_counter()
          rows = self.evaluate(eval_step, states, stop)
          secs = time.perf_counter() - t_eval
          diverged_host = np.asarray(jax.device_get(diverged_at))
          for i in range(n):
            if diverged_host[i] == 0:
              writers[i].write(stop, {**rows[i], "eval/secs": secs})
        diverged_host = np.asarray(jax.device_get(diverged_at))
        for i in range(n):
          if diverged_host[i] and status[i] == "running":
            status[i] = "diverged"
            metas[i].update(status="diverged", step=int(diverged_host[i]),
                            error=f"training diverged: non-finite loss or gradient at step {diverged_host[i]} "
                                  "(vectorized trial: masked out, no checkpoint)")
        if progress is not None:
          progress(Counter(status))
        start, interval_start = stop, time.perf_counter()
    except BaseException as error:  # record why every unfinished trial stopped, then let it propagate
      why = "preempted" if isinstance(error, KeyboardInterrupt) else "failed"
      for i in range(n):
        if status[i] == "running":
          status[i] = why
          metas[i].update(status=why, error=f"{type(error).__name__}: {error}")
      self._finish(metas, writers, status, compile_secs=None)
      raise
    for i in range(n):
      if status[i] == "running":
        status[i] = "done"
        metas[i].update(status="done", step=total)
    self._finish(metas, writers, status, compile_secs=compile_secs)
    return {t.index: s for t, s in zip(group.trials, status)}

  def evaluate(self, eval_step, states, step: int) -> list[dict[str, float]]:
    exp = self.exp
    replicated = NamedSharding(self.mesh, P())
    totals = None
    for batch in exp.source.eval_batches(self.config.eval_batch_size, step):
      sums = eval_step(states.params, states.model_state, jax.device_put(batch, replicated))
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    out = []
    for i in range(len(self.group.trials)):
      count = max(float(totals["count"][i]), 1.0)
      out.append({"eval/loss": float(totals["loss"][i]) / count,
                  f"eval/{exp.metric_name}": float(totals["metric"][i]) / count})
    return out

  # -- workdir bookkeeping --------------------------------------------------------------------------

  def _start_meta(self, i: int) -> dict[str, Any]:
    trial = self.group.trials[i]
    meta = {
        "status": "running", "start_time": _now(), "end_time": None, "step": 0,
        "versions": train._versions(), "devices": [str(d) for d in self.mesh.devices.flat],  # pylint: disable=protected-access
        "process_count": jax.process_count(), "git_commit": train._git_commit(),  # pylint: disable=protected-access
        "command": " ".join(sys.argv), "num_params": self.exp.num_params, "resumed_from": [],
        "vectorized": {"trials": [t.index for t in self.group.trials], "position": i,
                       "varying": self.group.varying, "devices": int(self.mesh.devices.size)},
    }
    trials_lib.write_json(trial.workdir / "meta.json", meta)
    return meta

  def _finish(self, metas, writers, status, compile_secs) -> None:
    for i, trial in enumerate(self.group.trials):
      writers[i].close()
      metas[i].update(end_time=_now(), compile_secs=compile_secs, last_checkpoint=None)
      trials_lib.write_json(trial.workdir / "meta.json", metas[i])
      rows = metrics_lib.read_jsonl(trial.workdir / "metrics.jsonl")
      if self.configs[i].log.plot and rows:
        metrics_lib.plot(rows, trial.workdir / "metrics.png", metric=self.exp.metric_name)


def _mark_failed(trials: Sequence[trials_lib.Trial], message: str) -> dict[int, str]:
  for trial in trials:
    meta = trials_lib.read_meta(trial.workdir)
    meta.update(status="failed", error=message, end_time=_now())
    trials_lib.write_json(trial.workdir / "meta.json", meta)
  return {t.index: "failed" for t in trials}


def run(loader: trials_lib.ConfigLoader, todo: Sequence[trials_lib.Trial], *, counts: dict[str, int] | None = None,
        devices: Sequence[jax.Device] | None = None, stream: TextIO | None = None) -> dict[int, str]:
  """Runs `todo` group by group; returns {trial index: status}. A group that fails to build or run is
  recorded as failed and the next group goes on."""
  stream = stream or sys.stdout
  groups = group_trials(loader, todo)
  print(describe(groups), file=stream, flush=True)
  base = Counter(counts or {})
  results: dict[int, str] = {}
  line = launch.ProgressLine(sum(base.values()) + len(todo), stream)
  for i, group in enumerate(groups):
    pending = sum(len(g.trials) for g in groups[i + 1:])

    def progress(group_counts, pending=pending):
      now = Counter(base)
      now.update(results.values())
      now.update(group_counts)
      now["pending"] += pending
      line.update(now)

    try:
      runner = GroupRunner(group, devices)
      results.update(runner.run(progress))
    except KeyboardInterrupt:
      line.close()
      raise
    except ConfigError as error:
      results.update(_mark_failed(group.trials, str(error)))
    except Exception as error:  # pylint: disable=broad-except  # one broken group must not stop the others
      traceback.print_exc(file=sys.stderr)
      results.update(_mark_failed(group.trials, f"{type(error).__name__}: {error}"))
    progress(Counter())
  line.close()
  return results

