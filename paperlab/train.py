"""The training loop: `train_and_evaluate(config, workdir)`.

One readable file in big_vision's style. It composes the parts: data (`paperlab.data`), model
(`paperlab.nn`), optimizer (`paperlab.optim`), checkpoints (`paperlab.checkpoint`) and metrics
(`paperlab.metrics`). No paper's math lives here; each paper's idea is switched on by config in its
own package.

A run is a pure function of its resolved config: batch i is a function of (data seed, i), the
model init and optimizer noise come from `config.seed`, and the state (params, optimizer state,
step, rng) is checkpointed whole. So a run killed at any point and resumed from its workdir ends with
exactly the parameters and logged metrics of a run that was never interrupted.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from paperlab import checkpoint as checkpoint_lib
from paperlab import cpu
from paperlab import config as config_lib
from paperlab import data as data_lib
from paperlab import dist
from paperlab import metrics as metrics_lib
from paperlab import nn as nn_lib
from paperlab import optim as optim_lib
from paperlab.errors import ConfigError
from paperlab.optim import paths as param_paths
from paperlab.state import TrainState


class Diverged(RuntimeError):
  """Training produced a non-finite loss or gradient; the last good checkpoint is kept."""

  def __init__(self, step: int, last_checkpoint: int | None, what: str):
    self.step, self.last_checkpoint = step, last_checkpoint
    kept = f"last good checkpoint: step {last_checkpoint}" if last_checkpoint is not None else "no checkpoint was saved"
    super().__init__(f"training diverged: non-finite {what} at step {step} ({kept})")


# ------------------------------------------------------------------------------------------------
# Building the experiment: everything that can fail on bad input happens here, before the workdir
# is touched and before anything is compiled.
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Experiment:
  """The built parts of a run, independent of any workdir (sweeps and benchmarks reuse it)."""
  config: ml_collections.ConfigDict
  source: Any                 # paperlab.data Source
  graphdef: Any               # nnx GraphDef of the model
  init_params: Any            # pure dict
  init_model_state: Any       # pure dict (non-parameter variables)
  tx: optax.GradientTransformationExtraArgs
  tract_spec: Any             # the model's first layer description, used when TrAct is on
  extra_args: frozenset       # extra update kwargs the optimizer needs ('tract_inputs', ...)
  mesh: jax.sharding.Mesh
  metric_name: str            # 'accuracy' or 'mse'

  @property
  def num_params(self) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.init_params))


def build_experiment(config: ml_collections.ConfigDict, *, mesh: jax.sharding.Mesh | None = None,
                     inject_hyperparams: bool = False) -> Experiment:
  """Validates the config and builds data, model and optimizer. Raises ConfigError on bad input."""
  config_lib.validate(config)
  cpu.limit_blas_threads()  # OpenBLAS's spinning threads would slow every step (cpu.py)
  mesh = mesh if mesh is not None else dist.make_mesh(config.mesh)
  dist.check_batch_size(config.batch_size, mesh)
  dist.check_batch_size(config.eval_batch_size, mesh, "config.eval_batch_size")
  source = data_lib.build(config.data, batch_size=config.batch_size)
  model = nn_lib.build(config.model, input_shape=tuple(source.input_shape), input_dtype=source.input_dtype,
                       vocab_size=source.vocab_size, output_dim=source.output_dim,
                       rngs=nnx.Rngs(params=jax.random.key(config.seed)))
  graphdef, params, model_state = nnx.split(model, nnx.Param, ...)
  params, model_state = nnx.to_pure_dict(params), nnx.to_pure_dict(model_state)
  extra_args = frozenset(optim_lib.extra_args_needed(config.optim))
  tract_spec = getattr(model, "tract_spec", None)
  if "tract_inputs" in extra_args and tract_spec is None:
    raise ConfigError(f"TrAct (config.optim.tract_lam) needs a model whose first layer is dense or conv; "
                      f"model {config.model.name!r} starts with an embedding lookup")
  if ("tract_inputs" in extra_args and tract_spec.preact_offset and "microbatch_grads" not in extra_args
      and optim_lib.tract_sees_raw_gradient(config.optim)):
    # TrAct from dL/dz: XLA then drops the autodiff kernel gradient (optim/tract.py).
    extra_args = extra_args | {"tract_output_grads"}
  tx = optim_lib.build(config.optim, params, total_steps=config.total_steps,
                       rng=jax.random.fold_in(jax.random.key(config.seed), 1),
                       tract_path=tract_spec.kernel_path if tract_spec is not None else None,
                       inject_hyperparams=inject_hyperparams)
  metric_name = "mse" if source.task == "regression" else "accuracy"
  return Experiment(config, source, graphdef, params, model_state, tx, tract_spec, extra_args, mesh, metric_name)


def init_state(exp: Experiment) -> TrainState:
  """A fresh state. Its buffers are copies: the train step donates them, and `exp` must stay
  usable for the next `init_state` (sweeps, benchmarks, restore targets)."""
  params = jax.tree.map(jnp.copy, exp.init_params)
  return TrainState(
      params=params,
      opt_state=exp.tx.init(params),
      model_state=jax.tree.map(jnp.copy, exp.init_model_state),
      step=jnp.zeros((), jnp.int32),
      rng=jax.random.fold_in(jax.random.key(exp.config.seed), 2))


# ------------------------------------------------------------------------------------------------
# Losses and metrics per task.
# ------------------------------------------------------------------------------------------------


def task_sums(task: str, outputs: jax.Array, batch: dict) -> dict[str, jax.Array]:
  """Per-batch sums of the loss and the task metric, weighted by the batch mask."""
  y = batch["y"]
  mask = batch.get("mask")
  if task == "regression":
    if outputs.ndim == y.ndim + 1 and outputs.shape[-1] == 1:
      outputs = outputs[..., 0]
    per_example = jnp.square(outputs.astype(jnp.float32) - y)
    metric = per_example
  elif task in ("classification", "sequence"):
    logits = outputs.astype(jnp.float32)
    per_example = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    metric = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
  else:
    raise ConfigError(f"unknown task {task!r}; valid: classification, sequence, regression")
  mask = jnp.ones_like(per_example) if mask is None else mask.astype(jnp.float32)
  return {"loss": jnp.sum(per_example * mask), "metric": jnp.sum(metric * mask), "count": jnp.sum(mask)}


def make_loss_fn(exp: Experiment) -> Callable:
  def loss_fn(params, model_state, batch, tract_preact_offset=None):
    model = nnx.merge(exp.graphdef, params, model_state)
    kwargs = {} if tract_preact_offset is None else {"tract_preact_offset": tract_preact_offset}
    sums = task_sums(exp.source.task, model(batch["x"], **kwargs), batch)
    count = jnp.maximum(sums["count"], 1.0)
    return sums["loss"] / count, sums["metric"] / count
  return loss_fn


def make_tract_inputs(exp: Experiment, x: jax.Array) -> jax.Array:
  spec = exp.tract_spec
  if spec.kind == "dense":
    return optim_lib.dense_inputs(x.reshape(-1, spec.in_features))
  return optim_lib.conv_patches(x.reshape(-1, *spec.image_shape), spec.kernel_size, spec.strides, spec.padding)


# ------------------------------------------------------------------------------------------------
# The train and eval steps (pure functions of their inputs; jitted once in `compile_steps`).
# ------------------------------------------------------------------------------------------------


def make_update_step(exp: Experiment, report: bool | None = None
                     ) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """update(state, batch) -> (state, metrics): one optimizer step on a given batch.

  The grad/param/update norms are metrics of reported steps (log, checkpoint and last steps):
  report=True computes them, report=False returns zeros, report=None decides on device from the
  step (a lax.cond). The trainer compiles one step of each kind and picks on the host, because the
  cond costs ~7-13 % of a small model's step on CPU (measured 0.69 vs 0.74-0.78 ms); vectorized
  sweeps vmap the report=None step over a stack of trial states with the batch shared."""
  loss_fn = make_loss_fn(exp)
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  grad_with_offset_fn = jax.value_and_grad(loss_fn, argnums=(0, 3), has_aux=True)
  cfg = exp.config

  def raw_grads_norm(grads, extra):
    if "tract_output_grads" in extra:
      # The reported gradient's first kernel is x^T dL/dz, rebuilt here (on reported steps only) so
      # that the autodiff one stays unused and XLA drops it.
      path = exp.tract_spec.kernel_path
      kernel_grad = extra["tract_inputs"].astype(jnp.float32).T @ extra["tract_output_grads"]
      kernel_shape = param_paths.leaf_at(grads, path).shape
      grads = param_paths.with_leaf(grads, path, kernel_grad.reshape(kernel_shape))
    return optax.tree.norm(grads)

  def update_step(state: TrainState, batch: dict):
    extra = {}
    if "tract_inputs" in exp.extra_args:
      extra["tract_inputs"] = make_tract_inputs(exp, batch["x"])
    if "microbatch_grads" in exp.extra_args:
      # Two independent half-batch gradients for the noise estimate; their mean is the step's gradient.
      halves = [jax.tree.map(lambda x, i=i: x[i::2], batch) for i in range(2)]
      (loss_a, metric_a), grads_a = grad_fn(state.params, state.model_state, halves[0])
      (loss_b, metric_b), grads_b = grad_fn(state.params, state.model_state, halves[1])
      loss, metric = (loss_a + loss_b) / 2, (metric_a + metric_b) / 2
      grads = jax.tree.map(lambda a, b: (a + b) / 2, grads_a, grads_b)
      extra["microbatch_grads"] = (grads_a, grads_b)
    elif "tract_output_grads" in exp.extra_args:
      # dL/dz of the first layer from a zero offset on z; TrAct recomputes the kernel gradient from it.
      kernel = param_paths.leaf_at(state.params, exp.tract_spec.kernel_path)
      offset = jnp.zeros((extra["tract_inputs"].shape[0], kernel.shape[-1]), jnp.float32)
      (loss, metric), (grads, output_grads) = grad_with_offset_fn(
          state.params, state.model_state, batch, offset)
      extra["tract_output_grads"] = output_grads
    else:
      (loss, metric), grads = grad_fn(state.params, state.model_state, batch)
    updates, opt_state = exp.tx.update(grads, state.opt_state, state.params, **extra)
    params = optax.apply_updates(state.params, updates)
    # The three global norms cost ~15% of a small model's step on CPU (one reduction per leaf), so
    # they are computed only on the steps that log or save a checkpoint (zeros elsewhere).
    compute_norms = lambda: jnp.stack([raw_grads_norm(grads, extra), optax.tree.norm(params),
                                       optax.tree.norm(updates)])
    no_norms = lambda: jnp.zeros(3, jnp.float32)
    if report is None:
      reported = _is_reported_step(state.step + 1, cfg.log_every, cfg.ckpt_every, cfg.total_steps)
      norms = jax.lax.cond(reported, compute_norms, no_norms)
    else:
      norms = compute_norms() if report else no_norms()
    metrics = {
        "loss": loss, exp.metric_name: metric, "grad_norm": norms[0], "param_norm": norms[1],
        "update_norm": norms[2],
        "lr": optim_lib.current_lr(cfg.optim, state.opt_state, state.step, cfg.total_steps),
        # A non-finite gradient between reported steps makes the next step's loss non-finite; on
        # reported steps (every checkpoint's among them) the gradient is checked directly.
        "finite": jnp.isfinite(loss) & jnp.isfinite(norms[0]),
    }
    return state._replace(params=params, opt_state=opt_state, step=state.step + 1), metrics

  return update_step


@jax.jit
def _pack_for_host(flags: list, metrics: dict | None) -> jax.Array:
  values = [f.astype(jnp.float32) for f in flags]
  values += [metrics[k].astype(jnp.float32) for k in sorted(metrics or {})]
  return jnp.stack(values) if values else jnp.zeros((0,), jnp.float32)


def fetch_for_host(flags: list, metrics: dict | None) -> tuple[list[bool], dict[str, float]]:
  """Steps' finite flags and one step's metrics, fetched as one array: on CPU each transfer of a
  scalar costs ~8 us, and a log step would otherwise fetch log_every flags plus every metric."""
  if not flags and metrics is None:
    return [], {}
  values = np.asarray(_pack_for_host(flags, metrics)).tolist()
  names = sorted(metrics or {})
  return [v != 0 for v in values[:len(flags)]], dict(zip(names, values[len(flags):]))


def compile_train_steps(exp: Experiment, state: TrainState, example_data: Any) -> Callable[[int], Callable]:
  """The trainer's compiled steps; returns step_for(n), the executable that runs step n (1-based):
  the reporting one on log/checkpoint/last steps, the plain one elsewhere. Both compile in parallel
  (XLA releases the GIL), which keeps the second compile mostly off the wall clock.

  The state is donated to the step on GPU/TPU (it halves the state's device memory); not on CPU,
  where donation made the quickstart-sized step slower (0.72 vs 0.68 ms, best of 11, 2 cores) and
  host memory is rarely the limit."""
  donate = () if jax.default_backend() == "cpu" else (0,)
  lowered = [jax.jit(make_train_step(exp, report), donate_argnums=donate).lower(state, example_data)
             for report in (False, True)]
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    plain, reporting = pool.map(lambda low: low.compile(), lowered)
  # Plain ints: this runs every step, and a ConfigDict attribute read costs ~0.7 us.
  intervals = exp.config.log_every, exp.config.ckpt_every, exp.config.total_steps
  return lambda n: reporting if _is_reported_step(n, *intervals) else plain


def _is_reported_step(step, log_every: int, ckpt_every: int, total_steps: int):
  """True for steps whose metrics are logged or that save a checkpoint (and the last step); `step`
  is a Python int (host) or a traced int32 (device)."""
  return (step % log_every == 0) | (step % ckpt_every == 0) | (step == total_steps)


def get_batch(exp: Experiment, data: Any, step: jax.Array) -> dict:
  """The batch for `step`: sampled on device from the source's device data, or `data` itself when the
  source streams host batches. Sharded over the mesh's data axis."""
  batch = exp.source.sample(data, step) if exp.source.on_device else data
  return jax.lax.with_sharding_constraint(batch, dist.batch_sharded(exp.mesh))


def make_train_step(exp: Experiment, report: bool | None = None
                    ) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
  """step(state, data) -> (state, metrics). `data` is the source's device data (sampled inside the
  step) or, for streaming sources, the batch itself. `report`: see make_update_step."""
  update_step = make_update_step(exp, report)

  def train_step(state: TrainState, data: Any):
    return update_step(state, get_batch(exp, data, state.step))

  return train_step


def make_eval_step(exp: Experiment) -> Callable:
  def eval_step(params, model_state, batch):
    model = nnx.merge(exp.graphdef, params, model_state)
    return task_sums(exp.source.task, model(batch["x"]), batch)
  return eval_step


def evaluate(exp: Experiment, eval_step: Callable, state: TrainState, step: int) -> dict[str, float]:
  totals = None
  for batch in exp.source.eval_batches(exp.config.eval_batch_size, step):
    sums = eval_step(state.params, state.model_state, dist.global_batch(batch, exp.mesh))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  totals = jax.device_get(totals)
  count = max(float(totals["count"]), 1.0)
  return {"eval/loss": float(totals["loss"]) / count, f"eval/{exp.metric_name}": float(totals["metric"]) / count}


# ------------------------------------------------------------------------------------------------
# The workdir: config.json, meta.json, metrics.jsonl, checkpoints/, metrics.png.
# ------------------------------------------------------------------------------------------------


def _write_json(path: pathlib.Path, obj: Any) -> None:
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
  os.replace(tmp, path)


def _git_commit() -> str | None:
  try:
    root = pathlib.Path(__file__).resolve().parent.parent
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    if sha.returncode != 0:
      return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return sha.stdout.strip() + ("-dirty" if dirty else "")
  except (OSError, subprocess.SubprocessError):
    return None


def _versions() -> dict[str, str]:
  import importlib.metadata as md  # pylint: disable=import-outside-toplevel
  out = {"python": platform.python_version()}
  for pkg in ("paperlab", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"):
    try:
      out[pkg] = md.version(pkg)
    except md.PackageNotFoundError:
      pass
  return out


def _config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
  diffs = []
  for key in sorted(set(old) | set(new)):
    path = f"{prefix}{key}"
    if prefix == "" and key in config_lib.RESUME_MUTABLE_FIELDS:
      continue
    a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
    if isinstance(a, dict) and isinstance(b, dict):
      diffs.extend(_config_diff(a, b, path + "."))
    elif a != b:
      diffs.append(f"{path}: {a!r} -> {b!r}")
  return diffs


def check_workdir(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> bool:
  """True when `workdir` holds an earlier run of this config to resume; ConfigError if it holds a
  different experiment (its checkpoints are never overwritten by another config)."""
  stored = workdir / "config.json"
  if not stored.exists():
    if (workdir / "checkpoints").exists() and any((workdir / "checkpoints").iterdir()):
      raise ConfigError(f"{workdir} has checkpoints but no config.json; use a new --workdir")
    return False
  old = json.loads(stored.read_text())
  new = json.loads(config.to_json_best_effort())
  diffs = _config_diff(old, new)
  if diffs:
    raise ConfigError(f"{workdir} holds a run of a different config ({'; '.join(diffs[:3])}"
                      f"{' ...' if len(diffs) > 3 else ''}); use a new --workdir or the same config to resume")
  return True


# ------------------------------------------------------------------------------------------------
# The loop.
# ------------------------------------------------------------------------------------------------


class _StopSignal:
  """SIGTERM/SIGINT set a flag; the loop saves a checkpoint and exits cleanly. A second SIGINT
  interrupts at once."""

  def __init__(self):
    self.received: int | None = None
    self._previous = {}

  def __enter__(self):
    if threading_main():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    if self.received is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.received = signum

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def threading_main() -> bool:
  import threading  # pylint: disable=import-outside-toplevel
  return threading.current_thread() is threading.main_thread()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict[str, Any]:
  """Trains `config` in `workdir`, resuming from its latest checkpoint if there is one.

  Returns a summary dict with `status` ('done' or 'preempted'), the final `step`, and the last
  train and eval metrics. Raises ConfigError on bad input (nothing is written then) and `Diverged`
  on a non-finite loss or gradient (the last good checkpoint is kept).
  """
  workdir = pathlib.Path(workdir)
  exp = build_experiment(config)
  resuming = check_workdir(config, workdir)
  main = dist.is_main_process()
  cfg = exp.config

  # -- Workdir and resume ---------------------------------------------------------------------
  if main:
    workdir.mkdir(parents=True, exist_ok=True)
  ckpt = checkpoint_lib.Checkpointer(workdir / "checkpoints", max_to_keep=cfg.max_to_keep)
  state = jax.device_put(init_state(exp), dist.replicated(exp.mesh))
  restored = ckpt.restore_latest(state) if resuming else None
  start_step = 0
  meta_path = workdir / "meta.json"
  meta = json.loads(meta_path.read_text()) if resuming and meta_path.exists() else {}
  if restored is not None:
    start_step, state = restored
    state = jax.device_put(state, dist.replicated(exp.mesh))
  writer = metrics_lib.JsonlWriter(workdir / "metrics.jsonl")
  if main:
    if resuming:
      writer.truncate_after(start_step)  # rows after the checkpoint are redone, identically
    _write_json(workdir / "config.json", json.loads(cfg.to_json_best_effort()))
    meta.update(
        status="running", start_time=meta.get("start_time", _now()), end_time=None,
        versions=_versions(), devices=[str(d) for d in jax.devices()], process_count=jax.process_count(),
        git_commit=_git_commit(), command=" ".join(sys.argv), num_params=exp.num_params)
    meta.setdefault("resumed_from", [])
    if restored is not None:
      meta["resumed_from"].append(start_step)
    _write_json(meta_path, meta)
  tb = metrics_lib.TensorBoardWriter(workdir / "tb") if cfg.log.tensorboard and main else None

  def log_row(step, scalars):
    if main:
      writer.write(step, scalars)
      if tb is not None:
        tb.write(step, scalars)

  print(f"paperlab: {cfg.model.name} ({exp.num_params:,} params) on {exp.source.describe()}; "
        f"{jax.device_count()} {jax.default_backend()} device(s); workdir {workdir}"
        + (f"; resuming from step {start_step}" if restored is not None else ""), flush=True)

  # -- Compile ---------------------------------------------------------------------------------
  data_arg = (jax.device_put(exp.source.device_data, dist.replicated(exp.mesh))
              if exp.source.on_device else None)
  example_data = data_arg if exp.source.on_device else dist.global_batch(exp.source.host_batch(0), exp.mesh)
  t0 = time.perf_counter()
  step_for = compile_train_steps(exp, state, example_data)
  eval_step = jax.jit(make_eval_step(exp))
  compile_secs = time.perf_counter() - t0

  # -- Train -----------------------------------------------------------------------------------
  total = cfg.total_steps
  log_every, eval_every, ckpt_every = cfg.log_every, cfg.eval_every, cfg.ckpt_every  # read once
  progress = metrics_lib.Progress(total, start_step, enabled=cfg.log.progress and main)
  last_saved = ckpt.steps()[-1] if ckpt.steps() else None
  unchecked: list[tuple[int, jax.Array]] = []  # (step, finite flag) not yet fetched from the device
  pending_log: tuple[int, dict] | None = None  # a log step's metrics, written once the next step runs
  last_train: dict[str, float] = {}
  last_eval: dict[str, float] = {}
  interval_start, interval_step = time.perf_counter(), start_step
  status = "running"
  step = start_step

  def write_pending_log():
    """Checks every unchecked step's finite flag (Diverged names the first bad step) and writes the
    pending log row, with one device-to-host transfer. Runs at log steps and before every save, so
    no checkpoint ever holds a state past an unchecked step, and the loop never waits on the device
    between those points."""
    nonlocal pending_log, last_train, interval_start, interval_step
    flags, metrics = fetch_for_host([flag for _, flag in unchecked],
                                    pending_log[1] if pending_log is not None else None)
    bad = [s for (s, _), ok in zip(unchecked, flags) if not ok]
    unchecked.clear()
    if bad:
      raise Diverged(bad[0], last_saved, "loss or gradient")
    if pending_log is None:
      return
    log_step = pending_log[0]
    pending_log = None
    values = {f"train/{k}": v for k, v in metrics.items() if k != "finite"}
    now = time.perf_counter()
    rate = (log_step - interval_step) / max(now - interval_start, 1e-9)
    interval_start, interval_step = now, log_step
    values["train/steps_per_sec"] = rate
    values["train/examples_per_sec"] = rate * cfg.batch_size
    if not last_train:
      values["compile_secs"] = compile_secs
    last_train = values
    log_row(log_step, values)
    progress.update(log_step, values)

  try:
    with _StopSignal() as stop:
      while step < total:
        if stop.received is not None:
          write_pending_log()
          ckpt.save(step, state)
          last_saved = step
          status = "preempted"
          print(f"\npaperlab: received signal {stop.received}; saved checkpoint at step {step}", flush=True)
          break
        data = data_arg if exp.source.on_device else dist.global_batch(exp.source.host_batch(step), exp.mesh)
        state, metrics = step_for(step + 1)(state, data)
        step += 1
        if pending_log is not None:
          write_pending_log()  # the previous log step: the device is already busy with this step
        unchecked.append((step, metrics["finite"]))
        if step % log_every == 0 or step == total:
          pending_log = (step, metrics)
        if step % eval_every == 0 or step % ckpt_every == 0 or step == total:
          write_pending_log()
          if step % eval_every == 0 or step == total:
            t_eval = time.perf_counter()
            last_eval = evaluate(exp, eval_step, state, step)
            last_eval["eval/secs"] = time.perf_counter() - t_eval
            log_row(step, last_eval)
            progress.update(step, last_eval)
            interval_start += time.perf_counter() - t_eval  # eval time is not train time
          if step % ckpt_every == 0 or step == total:
            if main:
              writer.flush()  # rows up to this step are on disk before the checkpoint exists
            ckpt.save(step, state)
            last_saved = step
      write_pending_log()
      if status == "running":
        status = "done"
  except Diverged as error:
    status = "diverged"
    meta["error"] = str(error)
    raise
  except BaseException as error:
    status = "failed"
    meta["error"] = f"{type(error).__name__}: {error}"
    raise
  finally:
    progress.close()
    ckpt.close()
    writer.close()
    if tb is not None:
      tb.close()
    if main:
      meta.update(status=status, end_time=_now(), step=int(step),
                  compile_secs=compile_secs, last_checkpoint=last_saved)
      _write_json(meta_path, meta)
      rows = metrics_lib.read_jsonl(workdir / "metrics.jsonl")
      if cfg.log.plot and rows:
        metrics_lib.plot(rows, workdir / "metrics.png", metric=exp.metric_name)
      if status in ("done", "preempted"):
        print(metrics_lib.summary_table(rows, title=f"paperlab: {status} at step {step} — {workdir}"), flush=True)

  return {"status": status, "step": int(step), "workdir": str(workdir), **last_train, **last_eval}


def _now() -> str:
  return datetime.datetime.now().astimezone().isoformat(timespec="seconds")
