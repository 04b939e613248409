"""TrainState: everything a run needs to continue, as one pytree (checkpointed whole)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax


class TrainState(NamedTuple):
  """params: pure-dict model parameters; model_state: non-parameter module variables (may be empty);
  opt_state: the optax state; step: int32 scalar, the number of updates applied; rng: a typed key for
  anything stochastic inside the step (folded with the step, so it never needs to be split)."""
  params: Any
  opt_state: Any
  model_state: Any
  step: jax.Array
  rng: jax.Array
