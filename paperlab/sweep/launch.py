"""Launchers: run trials as local processes, write a SLURM array script, or print the commands.

Every trial is the ordinary command `python -m paperlab.run --config <spec> --workdir DIR/trial_<i>
--config.<key>=<value> ...`, so a trial resumes from its checkpoints when it is run again and is a
no-op once done. The launchers only decide where and when those commands run.

- local: `--parallel N` processes at a time; output goes to `trial_<i>/log.txt`. With GPUs (from
  CUDA_VISIBLE_DEVICES or `nvidia-smi -L`) process slot k sees only GPU k mod #GPUs. On CPU the N
  processes share the cores. A sweep-level progress line counts done, running, failed and diverged
  trials. SIGINT/SIGTERM reach the trials, which save a checkpoint and stop (status `preempted`).
- slurm: writes `DIR/sweep.sbatch`, an array job with one task per unfinished trial (at most N at
  once). Each task runs its trial's command and then records the exit status.
- print: prints one command per unfinished trial, for any other scheduler.

Exit codes of `paperlab.run`: 0 done or preempted, 2 a user error, 3 diverged; anything else is a
crash. When a trial's meta.json does not already say how it ended (a crash before or during the run,
an error before its workdir was written), `record_exit` writes status `failed` with the error line.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from paperlab.sweep import algebra
from paperlab.sweep import trials as trials_lib

LAUNCHERS = ("local", "slurm", "print")
EXIT_DIVERGED = 3
LOG_FILE = "log.txt"
SBATCH_FILE = "sweep.sbatch"


def format_value(value: Any) -> str:
  """A Python value as ml_collections' config_flags parses it back (floats round-trip via repr)."""
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, float):
    return repr(value)
  if isinstance(value, (list, tuple)):
    return repr(tuple(value))
  return str(value)


def trial_command(config_spec: str, trial: trials_lib.Trial, *, python: str = sys.executable,
                  quiet: bool = False) -> list[str]:
  """The `paperlab.run` command of one trial; `quiet` turns off its console progress bar."""
  overrides = dict(trial.overrides)
  cmd = [python, "-m", "paperlab.run", "--config", trials_lib.trial_config_spec(config_spec, overrides),
         "--workdir", str(trial.workdir)]
  for key, value in overrides.items():
    if key != algebra.CONFIG_ARG_KEY:
      cmd.append(f"--config.{key}={format_value(value)}")
  if quiet and "log.progress" not in overrides:
    cmd.append("--config.log.progress=false")
  return cmd


def last_error_line(log_text: str) -> str:
  """The line that says why a run stopped: paperlab.run's own message, else the last line."""
  lines = [line.strip() for line in log_text.splitlines() if line.strip()]
  for line in reversed(lines):
    if line.startswith("paperlab.run:"):
      return line
  return lines[-1] if lines else "no output"


def record_exit(trial_dir: pathlib.Path, exit_code: int, log_text: str = "") -> str:
  """Makes meta.json say how the trial ended; returns its status."""
  meta = trials_lib.read_meta(trial_dir)
  status = meta.get("status")
  if exit_code == 0 and status in ("done", "preempted"):
    return status
  if status in ("diverged", "failed"):
    return status
  if not log_text and (trial_dir / LOG_FILE).exists():
    log_text = (trial_dir / LOG_FILE).read_text(errors="replace")[-20000:]
  if exit_code == EXIT_DIVERGED:
    meta.update(status="diverged")
  else:
    meta.update(status="failed", exit_code=exit_code, error=last_error_line(log_text) if log_text else
                f"exit code {exit_code}")
  meta.setdefault("end_time", None)
  meta["end_time"] = meta["end_time"] or datetime.datetime.now().astimezone().isoformat(timespec="seconds")
  trial_dir.mkdir(parents=True, exist_ok=True)
  trials_lib.write_json(trial_dir / "meta.json", meta)
  return meta["status"]


def visible_gpus() -> list[str]:
  """GPU ids a child process may be pinned to (without importing jax, which would claim them)."""
  env = os.environ.get("CUDA_VISIBLE_DEVICES")
  if env is not None:
    return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
  if shutil.which("nvidia-smi") is None:
    return []
  try:
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
  except (OSError, subprocess.SubprocessError):
    return []
  return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


class ProgressLine:
  """One sweep-level line: trials done, running, pending, failed, diverged, and elapsed time."""

  ORDER = ("done", "running", "preempted", "pending", "failed", "diverged")

  def __init__(self, total: int, stream: TextIO | None = None):
    self.total, self.stream = total, stream or sys.stdout
    self.start = time.monotonic()
    self.last = ""
    self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

  def text(self, counts: dict[str, int]) -> str:
    elapsed = datetime.timedelta(seconds=int(time.monotonic() - self.start))
    parts = [f"{counts.get(k, 0)} {k}" for k in self.ORDER if counts.get(k, 0) or k in ("done", "running")]
    return f"sweep: {self.total} trials | " + ", ".join(parts) + f" | {elapsed}"

  def update(self, counts: dict[str, int], force: bool = False) -> None:
    key = repr(sorted(counts.items()))
    if key == self.last and not force:
      return
    self.last = key
    line = self.text(counts)
    if self.tty:
      self.stream.write("\r" + line.ljust(100))
    else:
      self.stream.write(line + "\n")
    self.stream.flush()

  def close(self) -> None:
    if self.tty:
      self.stream.write("\n")
      self.stream.flush()


def _terminate_with_parent() -> None:
  """In the child before exec: Linux sends it SIGTERM if the launcher dies (even by SIGKILL), so no
  trial outlives its sweep and races a rerun on the same workdir; the trial saves and stops."""
  if sys.platform.startswith("linux"):
    import ctypes  # pylint: disable=import-outside-toplevel
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class _Stop:
  """SIGTERM/SIGINT: stop starting trials, pass SIGTERM on to the running ones, wait for them."""

  def __init__(self):
    self.received = None
    self._previous = {}

  def __enter__(self):
    import threading  # pylint: disable=import-outside-toplevel
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.received = signum

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def run_local(config_spec: str, todo: Sequence[trials_lib.Trial], *, parallel: int = 1,
              counts: dict[str, int] | None = None, env: dict[str, str] | None = None,
              poll_secs: float = 0.2, stream: TextIO | None = None) -> dict[int, str]:
  """Runs `todo` as `parallel` processes at a time; returns {trial index: final status}.

  `counts` are the statuses of the sweep's other trials (already finished), for the progress line."""
  base_counts = collections.Counter(counts or {})
  total = sum(base_counts.values()) + len(todo)
  gpus = visible_gpus()
  queue = collections.deque(todo)
  running: dict[int, tuple[trials_lib.Trial, subprocess.Popen, Any]] = {}  # slot -> trial, process, log
  results: dict[int, str] = {}
  progress = ProgressLine(total, stream)

  def show(force=False):
    now = collections.Counter(base_counts)
    now.update(results.values())
    now["running"] += len(running)
    now["pending"] += len(queue)
    progress.update(now, force)

  with _Stop() as stop:
    try:
      while queue or running:
        while queue and len(running) < parallel and stop.received is None:
          slot = min(set(range(parallel)) - set(running))
          trial = queue.popleft()
          child_env = dict(os.environ if env is None else env)
          if gpus:
            child_env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
          cmd = trial_command(config_spec, trial, quiet=True)
          log = open(trial.workdir / LOG_FILE, "a", encoding="utf-8")  # pylint: disable=consider-using-with
          log.write(f"=== {datetime.datetime.now().isoformat(timespec='seconds')} {shlex.join(cmd)}\n")
          log.flush()
          # Same process group: a Ctrl-C or a scheduler's kill of the group reaches the trials too.
          proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env,
                                  preexec_fn=_terminate_with_parent)
          running[slot] = (trial, proc, log)
        if stop.received is not None:
          queue.clear()
          for _, proc, _ in running.values():
            if proc.poll() is None and not getattr(proc, "_paperlab_signalled", False):
              proc.send_signal(signal.SIGTERM)
              proc._paperlab_signalled = True  # pylint: disable=protected-access
        for slot, (trial, proc, log) in list(running.items()):
          code = proc.poll()
          if code is None:
            continue
          log.close()
          results[trial.index] = record_exit(trial.workdir, code)
          del running[slot]
        show()
        if running:
          time.sleep(poll_secs)
    finally:
      for trial, proc, log in running.values():  # only reached with live children on an exception
        if proc.poll() is None:
          proc.kill()
          proc.wait()
        log.close()
      show(force=True)
      progress.close()
  return results


def slurm_script(config_spec: str, todo: Sequence[trials_lib.Trial], workdir: pathlib.Path, *,
                 parallel: int, sbatch_options: Sequence[str] = (), python: str = sys.executable) -> str:
  """An sbatch array script: task i runs trial i's command, then records how it ended."""
  if not todo:
    raise ValueError("no trials to put in a SLURM script")
  workdir = workdir.absolute()
  indices = ",".join(str(t.index) for t in todo)
  lines = [
      "#!/bin/bash",
      f"# Written by paperlab.sweep: {len(todo)} trial(s) of {config_spec} in {workdir}.",
      f"# Submit with: sbatch {workdir / SBATCH_FILE}",
      "# Each array task runs one trial; a rerun resumes from its checkpoints and skips it when done.",
      f"#SBATCH --job-name=paperlab-{workdir.name}",
      f"#SBATCH --array={indices}%{parallel}",
      f"#SBATCH --output={workdir}/slurm/%A_%a.out",
      "#SBATCH --ntasks=1",
  ]
  lines += [f"#SBATCH {opt if opt.startswith('-') else '--' + opt}" for opt in sbatch_options]
  lines += ["", "set -uo pipefail", f"cd {shlex.quote(str(pathlib.Path.cwd()))}", "",
            'case "${SLURM_ARRAY_TASK_ID}" in']
  for trial in todo:
    cmd = trial_command(config_spec, dataclasses.replace(trial, workdir=trial.workdir.absolute()),
                        python=python, quiet=True)
    lines.append(f"  {trial.index}) trial={shlex.quote(str(trial.workdir.absolute()))}")
    lines.append(f"     cmd=({shlex.join(cmd)}) ;;")
  lines += ['  *) echo "paperlab.sweep: no trial ${SLURM_ARRAY_TASK_ID} in this script" >&2; exit 2 ;;',
            "esac", "",
            '"${cmd[@]}"',
            "rc=$?",
            f'{shlex.quote(python)} -m paperlab.sweep --record_exit "$trial" "$rc"',
            'exit "$rc"', ""]
  return "\n".join(lines)


def write_slurm(config_spec: str, todo: Sequence[trials_lib.Trial], workdir: pathlib.Path, *, parallel: int,
                sbatch_options: Sequence[str] = ()) -> pathlib.Path:
  (workdir / "slurm").mkdir(parents=True, exist_ok=True)
  path = workdir / SBATCH_FILE
  path.write_text(slurm_script(config_spec, todo, workdir, parallel=parallel, sbatch_options=sbatch_options))
  path.chmod(0o755)
  return path


def print_commands(config_spec: str, todo: Sequence[trials_lib.Trial], stream: TextIO | None = None) -> None:
  stream = stream or sys.stdout
  for trial in todo:
    stream.write(shlex.join(trial_command(config_spec, trial, python="python")) + "\n")
  stream.flush()
