"""Tests for paperlab/data/icl_regression.py: token layout, y = w.x + noise, held-out set."""
import jax
import numpy as np

import paperlab.data as data
from paperlab.data import icl_regression

# noise_std is traced, so both generative tests share one compile.
generate = jax.jit(icl_regression.generate, static_argnums=(1, 2, 3))


def unpack(batch, dim):
  """Recovers (xs [S, n, d], ys [S, n]) from the token layout, checking it on the way."""
  x, y, mask = batch["x"], batch["y"], batch["mask"]
  x_tokens, y_tokens = x[:, 0::2], x[:, 1::2]
  np.testing.assert_array_equal(x_tokens[..., dim], 0.0)      # x-token = [x, 0]
  np.testing.assert_array_equal(y_tokens[..., :dim], 0.0)     # y-token = [0, ..., 0, y]
  np.testing.assert_array_equal(y[:, 0::2], y_tokens[..., dim])  # target at x_i is y_i
  np.testing.assert_array_equal(y[:, 1::2], 0.0)
  np.testing.assert_array_equal(mask[:, 0::2], 1.0)
  np.testing.assert_array_equal(mask[:, 1::2], 0.0)
  return x_tokens[..., :dim], y_tokens[..., dim]


def test_noiseless_sequences_are_exactly_linear():
  # 20 points in 4 dimensions: least squares recovers w and leaves no residual.
  batch = jax.tree.map(np.asarray, generate(jax.random.key(0), 2000, 4, 20, 0.0))
  xs, ys = unpack(batch, 4)
  for s in range(100):
    w, *_ = np.linalg.lstsq(xs[s], ys[s], rcond=None)
    np.testing.assert_allclose(xs[s] @ w, ys[s], atol=1e-4)


def test_moments_match_the_generative_model():
  dim, n, noise_std, num = 4, 20, 0.5, 2000
  batch = jax.tree.map(np.asarray, generate(jax.random.key(1), num, dim, n, noise_std))
  xs, ys = unpack(batch, dim)
  assert abs(xs.mean()) < 0.02 and abs(xs.var() - 1.0) < 0.03       # x ~ N(0, I)
  # Var(w.x + e) = E|w|^2 + noise_std^2 = d + noise_std^2.
  assert abs(ys.var() / (dim + noise_std**2) - 1.0) < 0.05
  # Least-squares residuals estimate the noise: E[RSS] = (n - d) * noise_std^2.
  rss = [np.sum((ys[s] - xs[s] @ np.linalg.lstsq(xs[s], ys[s], rcond=None)[0])**2)
         for s in range(num)]
  assert abs(np.mean(rss) / ((n - dim) * noise_std**2) - 1.0) < 0.05
  # Each sequence has its own w: the fitted weights vary like N(0, I).
  ws = np.stack([np.linalg.lstsq(xs[s], ys[s], rcond=None)[0] for s in range(200)])
  assert abs(ws.var() - 1.0) < 0.2


def test_batches_depend_on_step_and_seed_and_eval_is_a_separate_fixed_set(small_config):
  source = data.build(small_config("icl_regression"), batch_size=4)
  assert source.task == "regression" and source.input_shape == (10, 4) and source.output_dim == 1
  b3, b4 = source.host_batch(3), source.host_batch(4)
  unpack(b3, 3)
  assert not np.allclose(b3["x"], b4["x"])
  evals = list(source.eval_batches(4))
  assert len(evals) == 3 and evals[-1]["mask"][2:].sum() == 0 and evals[-1]["mask"][:2].sum() == 10
  unpack(evals[0], 3)
  # Fixed: same set again, from a stream that no training step uses.
  np.testing.assert_array_equal(list(source.eval_batches(4))[1]["x"], evals[1]["x"])
  train_first = np.concatenate([source.host_batch(s)["x"] for s in range(3)])
  eval_x = np.concatenate([e["x"] for e in evals])[:10]
  assert not any(np.allclose(e, t) for e in eval_x for t in train_first)
  # The data seed changes the random streams (the eval stream here; training uses the same
  # stream_key(seed, .) path with another stream id).
  other_seed = data.build(small_config("icl_regression", seed=1), batch_size=4)
  assert not np.allclose(next(other_seed.eval_batches(4))["x"], evals[0]["x"])
