"""Learning-rate schedules of `config.optim`, as shapes with peak 1 times a peak rate `lr`.

    constant:       w(t)
    cosine:         final + (1 - final) * 0.5 * (1 + cos(pi * min(t, D) / D))        (no warmup)
    warmup_cosine:  w(t) * (final + (1 - final) * 0.5 * (1 + cos(pi * min(t - W, D - W) / (D - W))))

with t the step (0 for the first update), W = warmup_steps, D = decay_steps (the total steps by
default), final = final_lr_scale, and the linear warmup w(t) = min(1, t / W) (1 when W = 0). This is
optax.warmup_cosine_decay_schedule(0, 1, W, D, final) and optax.cosine_decay_schedule(1, D, final).
Written as plain arithmetic so that `final` may be a traced, injected hyperparameter. The shape is
applied by `optax.scale_by_schedule` after the base optimizer, which equals passing lr * shape(t)
as the optimizer's learning rate (weight decay included, which optax multiplies by the rate).
"""
from typing import Callable

import jax
import jax.numpy as jnp

SCHEDULES = ('constant', 'cosine', 'warmup_cosine')


def schedule_shape(name: str, *, warmup_steps: int, decay_steps: int | None,
                   final_lr_scale=0.0) -> Callable[[jax.Array], jax.Array]:
  """step -> multiplier of the peak learning rate (float32), see the module docstring."""

  def warmup(t):
    if warmup_steps <= 0:
      return jnp.ones_like(t)
    return jnp.minimum(1.0, t / warmup_steps)

  def cosine(t, length):
    frac = jnp.clip(t, 0, length) / length
    return final_lr_scale + (1 - final_lr_scale) * 0.5 * (1 + jnp.cos(jnp.pi * frac))

  def shape(step):
    t = jnp.asarray(step).astype(jnp.float32)
    if name == 'constant':
      return warmup(t)
    if name == 'cosine':
      return cosine(t, decay_steps)
    return warmup(t) * cosine(t - warmup_steps, decay_steps - warmup_steps)

  return shape
