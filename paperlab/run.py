"""Command-line entry point: `python -m paperlab.run --config configs/<exp>.py[:arg] [--config.a.b=v] [--workdir DIR]`.

A thin absl main over `paperlab.train.train_and_evaluate`. User mistakes (a missing config file, an
unknown field, a value of the wrong type, an unknown model/data/optimizer name) print one line and
exit with code 2, before anything is compiled or written. A diverged run exits with code 3.
"""

from __future__ import annotations

import datetime
import pathlib
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from paperlab.errors import ConfigError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, `path.py[:arg]`.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory; default runs/<config name>/<YYYYmmdd-HHMMSS>. "
                               "An existing run directory of the same config is resumed.")

EXIT_USAGE = 2
EXIT_DIVERGED = 3


def fail(message: str) -> None:
  print(f"paperlab.run: error: {message}", file=sys.stderr, flush=True)
  sys.exit(EXIT_USAGE)


def _override_paths(argv: list[str]) -> list[tuple[str, str]]:
  """(dotted field, raw value) of every `--config.a.b=v` / `--config.a.b v` in argv."""
  out = []
  for i, arg in enumerate(argv):
    m = re.match(r"^--?config\.([\w.]+)(?:=(.*))?$", arg)
    if m:
      value = m.group(2) if m.group(2) is not None else (argv[i + 1] if i + 1 < len(argv) else "")
      out.append((m.group(1), value))
  return out


def _config_arg(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith(("--config=", "-config=")):
      return arg.split("=", 1)[1]
    if arg in ("--config", "-config") and i + 1 < len(argv):
      return argv[i + 1]
  return None


def explain_flag_error(argv: list[str], error: BaseException) -> str:
  """Turns whatever absl/ml_collections raised while parsing into one line a researcher can act on."""
  from paperlab import config as config_lib  # pylint: disable=import-outside-toplevel
  spec = _config_arg(argv)
  if not spec:
    return "--config is required, e.g. --config configs/quickstart.py"
  if isinstance(error, ConfigError):
    return str(error)
  try:
    config = config_lib.load(spec)
  except ConfigError as e:
    return str(e)
  except Exception as e:  # pylint: disable=broad-except  # the config file itself is broken
    return f"could not load {spec}: {type(e).__name__}: {e}"
  for dotted, raw in _override_paths(argv):
    node, parts = config, dotted.split(".")
    for part in parts[:-1]:
      node = node.get(part) if hasattr(node, "get") else None
    if node is None or not hasattr(node, "keys") or parts[-1] not in node:
      return str(config_lib.unknown_field_error(config, dotted))
    if f"--config.{dotted}" in str(error) or f"config.{dotted}" in str(error):
      field_type = type(node[parts[-1]]).__name__
      return f"bad value {raw!r} for config field {dotted!r} (expected {field_type}): {_last_line(error)}"
  return _last_line(error)


def _last_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return text[-1] if text else type(error).__name__


def parse_flags(argv: list[str]) -> list[str]:
  try:
    remaining = flags.FLAGS(argv)
    if _CONFIG.value is not None:
      _CONFIG.value.keys()  # config_flags defers a failed load of the file to the first access
    return remaining
  except SystemExit:
    raise
  except BaseException as error:  # pylint: disable=broad-except  # every parse failure is a usage error
    fail(explain_flag_error(argv, error))


def default_workdir(config_spec: str) -> pathlib.Path:
  name = pathlib.Path(config_spec.split(":", 1)[0]).stem
  return pathlib.Path("runs") / name / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    fail(f"unexpected arguments {argv[1:]}; fields are set with --config.<field>=<value>")
  if _CONFIG.value is None:
    fail("--config is required, e.g. --config configs/quickstart.py")
  if not any(a.startswith(("--verbosity", "-v", "--v=")) for a in sys.argv[1:]):
    logging.set_verbosity(logging.WARNING)  # Orbax and jax log every save and backend probe at INFO
  from paperlab import dist, train  # pylint: disable=import-outside-toplevel  # keep --help fast
  dist.maybe_initialize_distributed()
  workdir = pathlib.Path(_WORKDIR.value) if _WORKDIR.value else default_workdir(
      config_flags.get_config_filename(flags.FLAGS["config"]))
  try:
    train.train_and_evaluate(_CONFIG.value, workdir)
  except ConfigError as error:
    fail(str(error))
  except train.Diverged as error:
    print(f"paperlab.run: {error}", file=sys.stderr, flush=True)
    sys.exit(EXIT_DIVERGED)


def run() -> None:
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
