"""Activation functions by name, for the `activation` field of every model config."""
from typing import Callable

import jax
import jax.numpy as jnp

from paperlab.errors import unknown_name_error


def identity(x: jax.Array) -> jax.Array:
  return x


# gelu is the tanh approximation (jax.nn.gelu's default), as in GPT-2 and big_vision.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    'relu': jax.nn.relu,
    'gelu': jax.nn.gelu,
    'silu': jax.nn.silu,
    'tanh': jnp.tanh,
    'sigmoid': jax.nn.sigmoid,
    'elu': jax.nn.elu,
    'leaky_relu': jax.nn.leaky_relu,
    'identity': identity,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
  if name not in ACTIVATIONS:
    raise unknown_name_error('activation', name, ACTIVATIONS)
  return ACTIVATIONS[name]
