"""Checks for model config values: each failure is one `ConfigError` line naming the field."""
from typing import Any, Iterable

from paperlab.errors import ConfigError


def choice(model: str, field: str, value: Any, valid: Iterable[str]) -> None:
  valid = tuple(valid)
  if value not in valid:
    raise ConfigError(
        f'model.{field}={value!r} is not valid for model {model!r}; valid: {", ".join(valid)}')


def positive_int(model: str, field: str, value: Any, *, allow_zero: bool = False) -> None:
  ok = isinstance(value, int) and not isinstance(value, bool) and (
      value >= 0 if allow_zero else value > 0)
  if not ok:
    need = 'an int >= 0' if allow_zero else 'an int > 0'
    raise ConfigError(f'model.{field}={value!r} for model {model!r} must be {need}')


def positive_number(model: str, field: str, value: Any) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
    raise ConfigError(f'model.{field}={value!r} for model {model!r} must be a number > 0')


def boolean(model: str, field: str, value: Any) -> None:
  if not isinstance(value, bool):
    raise ConfigError(f'model.{field}={value!r} for model {model!r} must be True or False')


def no_tokens(model: str, vocab_size: int | None) -> None:
  if vocab_size is not None:
    raise ConfigError(
        f'model {model!r} reads float inputs but the data gives tokens (vocab_size={vocab_size});'
        ' use model.name=transformer for token data')
