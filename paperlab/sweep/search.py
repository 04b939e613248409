"""Random search: `random_search({"optim.lr": loguniform(1e-4, 1e-1)}, n=16, seed=0)`.

Each trial draws a point u in [0, 1)^d (d = number of searched fields, in the dict's order) and maps
coordinate j through field j's distribution:

  uniform(a, b):     a + u (b - a)
  loguniform(a, b):  exp(log a + u (log b - log a))
  choice(values):    values[floor(u * len(values))]

`method="halton"` (default) takes the Halton low-discrepancy sequence: coordinate j of point i is the
radical inverse of i in the j-th prime base, phi_p(i) = sum_k d_k p^-(k+1) where i = sum_k d_k p^k
(Halton 1960), for i = 1..n. The seed applies a Cranley-Patterson rotation, u -> (u + s) mod 1 with
s ~ U[0,1)^d, so different seeds give different, equally well spread point sets (our choice; AlgoPerf's
`halton.generate_search` shuffles instead). `method="random"` draws u i.i.d. uniform from the seed.
Halton points cover a few dimensions more evenly than i.i.d. draws for small n, which is why sweeps
of 8-32 trials prefer it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from paperlab.errors import ConfigError
from paperlab.sweep.algebra import Sweep

METHODS = ("halton", "random")


@dataclasses.dataclass(frozen=True)
class Uniform:
  low: float
  high: float

  def map(self, u: float) -> float:
    return float(self.low + u * (self.high - self.low))


@dataclasses.dataclass(frozen=True)
class LogUniform:
  low: float
  high: float

  def map(self, u: float) -> float:
    return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))


@dataclasses.dataclass(frozen=True)
class Choice:
  values: tuple

  def map(self, u: float) -> Any:
    return self.values[min(int(u * len(self.values)), len(self.values) - 1)]


def uniform(low: float, high: float) -> Uniform:
  if not low < high:
    raise ConfigError(f"uniform({low}, {high}) needs low < high")
  return Uniform(float(low), float(high))


def loguniform(low: float, high: float) -> LogUniform:
  if not 0 < low < high:
    raise ConfigError(f"loguniform({low}, {high}) needs 0 < low < high")
  return LogUniform(float(low), float(high))


def choice(values: Sequence[Any]) -> Choice:
  values = tuple(values)
  if not values:
    raise ConfigError("choice([]) needs at least one value")
  return Choice(values)


def primes(count: int) -> list[int]:
  """The first `count` primes."""
  found: list[int] = []
  candidate = 2
  while len(found) < count:
    if all(candidate % p for p in found if p * p <= candidate):
      found.append(candidate)
    candidate += 1
  return found


def radical_inverse(index: int, base: int) -> float:
  """phi_base(index): the base-`base` digits of `index` mirrored about the radix point."""
  result, scale = 0.0, 1.0 / base
  while index > 0:
    index, digit = divmod(index, base)
    result += digit * scale
    scale /= base
  return result


def halton(n: int, dims: int, seed: int | None = 0) -> np.ndarray:
  """[n, dims] Halton points i = 1..n, rotated by a seed-dependent shift (none when seed is None)."""
  bases = primes(dims)
  points = np.array([[radical_inverse(i, b) for b in bases] for i in range(1, n + 1)], dtype=np.float64)
  points = points.reshape(n, dims)
  if seed is not None:
    shift = np.random.default_rng(seed).random(dims)
    points = np.mod(points + shift, 1.0)
  return points


def random_search(space: Mapping[str, Any], n: int, *, seed: int = 0, method: str = "halton") -> Sweep:
  """`n` trials drawn from `space` (field -> uniform/loguniform/choice)."""
  if not isinstance(n, int) or n < 1:
    raise ConfigError(f"random_search needs n >= 1 trials, got {n!r}")
  if method not in METHODS:
    raise ConfigError(f"unknown random_search method {method!r}; valid: {', '.join(METHODS)}")
  if not space:
    raise ConfigError("random_search needs at least one field to search")
  for key, dist in space.items():
    if not isinstance(dist, (Uniform, LogUniform, Choice)):
      raise ConfigError(f"random_search field {key!r}: expected uniform(...), loguniform(...) or choice([...]), "
                        f"got {dist!r}")
  keys = list(space)
  if method == "halton":
    points = halton(n, len(keys), seed)
  else:
    points = np.random.default_rng(seed).random((n, len(keys)))
  return [{key: space[key].map(float(u)) for key, u in zip(keys, row)} for row in points]
