"""Tests for paperlab/optim/schedules.py against optax's own schedules."""
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from paperlab.optim import schedule_shape

STEPS = jnp.arange(0, 130)


@pytest.mark.parametrize('warmup,final', [(10, 0.0), (0, 0.1), (25, 0.2)])
def test_warmup_cosine_equals_optax(warmup, final):
  ours = schedule_shape('warmup_cosine', warmup_steps=warmup, decay_steps=100,
                        final_lr_scale=final)(STEPS)
  theirs = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, 100, end_value=final)(STEPS)
  np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_cosine_equals_optax():
  ours = schedule_shape('cosine', warmup_steps=0, decay_steps=100, final_lr_scale=0.05)(STEPS)
  theirs = optax.cosine_decay_schedule(1.0, 100, alpha=0.05)(STEPS)
  np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_constant_with_and_without_warmup():
  np.testing.assert_array_equal(
      schedule_shape('constant', warmup_steps=0, decay_steps=None)(STEPS), 1.0)
  ours = schedule_shape('constant', warmup_steps=20, decay_steps=None)(STEPS)
  theirs = optax.join_schedules([optax.linear_schedule(0.0, 1.0, 20), optax.constant_schedule(1.0)],
                                [20])(STEPS)
  np.testing.assert_allclose(ours, theirs, atol=1e-6)
