"""`python -m paperlab.sweep`: expand a sweep into trial directories, launch it, print its results.

  python -m paperlab.sweep --config configs/quickstart.py --workdir runs/qs_sweep \\
      [--axis optim.lr=1e-3,3e-3 --axis seed=0,1] [--parallel N] [--launcher local|slurm|print]
      [--trials A:B] [--vectorize]
  python -m paperlab.sweep --results runs/qs_sweep      # the table again, at any time

The trials are the config's `get_sweep(arg)` (if it defines one; `--no_config_sweep` ignores it)
times the product of the `--axis` flags. Rerunning the command skips finished trials (done or
diverged) and resumes the others from their checkpoints. Every override is checked against the config
before anything runs; a mistake prints one line and exits with code 2. The sweep exits with 1 when a
trial in the range failed or was stopped before the end (SIGINT/SIGTERM: the trials save a checkpoint),
else 0 (a diverged trial is a result, not a failure).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections import Counter
from collections.abc import Sequence

from paperlab.errors import ConfigError
from paperlab.sweep import launch, results
from paperlab.sweep import trials as trials_lib

EXIT_USAGE = 2
EXIT_INCOMPLETE = 1  # a trial failed, or the sweep was stopped before every trial finished


class _Parser(argparse.ArgumentParser):
  def error(self, message):
    fail(f"{message} (see --help)")


def fail(message: str) -> None:
  print(f"paperlab.sweep: error: {message}", file=sys.stderr, flush=True)
  sys.exit(EXIT_USAGE)


def make_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="python -m paperlab.sweep", description=__doc__.split("\n\n")[0],
                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", help="config file, `configs/x.py[:arg]`; its get_sweep(arg) defines the trials")
  parser.add_argument("--workdir", help="sweep directory: DIR/trial_<i>/ per trial, DIR/results.csv, DIR/sweep.png")
  parser.add_argument("--axis", action="append", default=[], metavar="KEY=V1,V2,...",
                      help="a swept config field; several --axis flags take the product (with get_sweep's trials)")
  parser.add_argument("--no_config_sweep", action="store_true", help="ignore the config's get_sweep")
  parser.add_argument("--parallel", type=int, default=1, help="trials at a time (local) or array tasks at once (slurm)")
  parser.add_argument("--launcher", choices=launch.LAUNCHERS, default="local")
  parser.add_argument("--trials", metavar="A:B", help="run only trials A..B-1 (several machines can share a sweep)")
  parser.add_argument("--vectorize", action="store_true",
                      help="run trials that differ only in numeric optimizer hyperparameters and seeds as one "
                           "vmapped program (in this process, on all local devices)")
  parser.add_argument("--results", metavar="DIR", help="print the results table of a sweep directory and exit")
  parser.add_argument("--mode", choices=results.MODES, help="max or min: is a larger target metric better? "
                      "(default: guessed from its name)")
  parser.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                      help="extra #SBATCH line for --launcher slurm, e.g. --sbatch partition=gpu --sbatch gres=gpu:1")
  parser.add_argument("--record_exit", nargs=2, metavar=("TRIAL_DIR", "EXIT_CODE"), help=argparse.SUPPRESS)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  args = make_parser().parse_args(argv)
  try:
    return _main(args)
  except ConfigError as error:
    fail(str(error))
  except KeyboardInterrupt:
    print("\npaperlab.sweep: interrupted; rerun the same command to continue", file=sys.stderr, flush=True)
    return EXIT_INCOMPLETE
  return EXIT_USAGE


def _main(args: argparse.Namespace) -> int:
  if args.record_exit:  # the last line of a SLURM array task
    trial_dir, code = args.record_exit
    launch.record_exit(pathlib.Path(trial_dir), int(code))
    return 0
  if args.results:
    _, trials = trials_lib.load_trials(pathlib.Path(args.results))
    print(results.report(pathlib.Path(args.results), trials, mode=args.mode), flush=True)
    return 0
  if not args.config or not args.workdir:
    fail("--config and --workdir are required (or --results DIR)")
  if args.parallel < 1:
    fail(f"--parallel must be >= 1, got {args.parallel}")
  if args.vectorize and args.launcher != "local":
    fail("--vectorize runs the trials in this process; use it with --launcher local")

  workdir = pathlib.Path(args.workdir)
  loader = trials_lib.ConfigLoader(args.config)
  definitions = trials_lib.expand(loader, args.axis, use_config_sweep=not args.no_config_sweep)
  for i, overrides in enumerate(definitions):
    try:
      loader.trial_config(overrides)
    except ConfigError as error:
      raise ConfigError(f"trial {i} {overrides}: {error}") from None
  trials = trials_lib.prepare(workdir, args.config, definitions)
  selected = [trials[i] for i in trials_lib.parse_trial_range(args.trials, len(trials))]
  statuses = {t.index: t.status for t in selected}
  todo = [t for t in selected if statuses[t.index] not in trials_lib.FINISHED]
  finished = Counter(statuses[t.index] for t in selected if statuses[t.index] in trials_lib.FINISHED)
  skipped = f"; {sum(finished.values())} already finished, skipped" if finished else ""
  print(f"paperlab.sweep: {len(trials)} trials in {workdir}; {len(selected)} selected{skipped}; "
        f"{len(todo)} to run with --launcher {args.launcher}{' --vectorize' if args.vectorize else ''}", flush=True)

  if args.launcher == "print":
    launch.print_commands(args.config, todo)
    return 0
  if args.launcher == "slurm":
    if not todo:
      print("paperlab.sweep: nothing to submit", flush=True)
      return 0
    path = launch.write_slurm(args.config, todo, workdir, parallel=args.parallel, sbatch_options=args.sbatch)
    print(f"paperlab.sweep: wrote {path}; submit it with: sbatch {path}", flush=True)
    return 0

  if todo:
    if args.vectorize:
      from paperlab.sweep import vectorize  # pylint: disable=import-outside-toplevel  # imports jax
      vectorize.run(loader, todo, counts=finished)
    else:
      launch.run_local(args.config, todo, parallel=args.parallel, counts=finished)
  metric = loader.base().get("target_metric", None)
  print(results.report(workdir, trials, metric=metric, mode=args.mode), flush=True)
  final = {t.index: t.status for t in selected}
  failed = [i for i, s in final.items() if s == "failed"]
  unfinished = [i for i, s in final.items() if s not in trials_lib.FINISHED and s != "failed"]
  if failed:
    print(f"paperlab.sweep: {len(failed)} trial(s) failed: {failed}; see trial_<i>/log.txt and meta.json",
          file=sys.stderr, flush=True)
  if unfinished:
    print(f"paperlab.sweep: {len(unfinished)} trial(s) did not finish: {unfinished}; rerun the same command "
          "to resume them", file=sys.stderr, flush=True)
  return EXIT_INCOMPLETE if failed or unfinished else 0


def run() -> None:
  sys.exit(main())
