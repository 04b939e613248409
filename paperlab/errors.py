"""The one exception type for user mistakes.

Anything a researcher can get wrong from the command line or a config file (an unknown key, a bad
value, a missing dataset) raises `ConfigError` with one line naming what was wrong and what is
valid. `paperlab.run` turns it into that line on stderr and exit code 2, never a traceback.
"""


class ConfigError(ValueError):
  """A user-facing configuration or input error; the message is shown as-is."""


def unknown_name_error(kind: str, name: str, valid) -> ConfigError:
  """`ConfigError` for a registry lookup miss, listing the valid names."""
  return ConfigError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")
