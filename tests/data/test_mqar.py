"""Tests for paperlab/data/mqar.py: Zoology's MQAR layout, checked by an independent reader."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import paperlab.data as data
from paperlab.data import mqar
from paperlab.errors import ConfigError


def check_mqar(batch, vocab_size, num_kv_pairs, random_non_queries):
  """Reads each sequence as Zoology lays it out and checks every rule of the task."""
  x, y, mask = (np.asarray(batch[k]) for k in ("x", "y", "mask"))
  half, context = vocab_size // 2, 2 * num_kv_pairs
  for s in range(len(x)):
    keys, values = x[s, 0:context:2], x[s, 1:context:2]
    assert len(set(keys)) == num_kv_pairs and len(set(values)) == num_kv_pairs
    assert keys.min() >= 1 and keys.max() < half                 # keys: lower half, not 0
    assert values.min() >= half and values.max() < vocab_size    # values: upper half
    queries = np.flatnonzero(mask[s])
    assert len(queries) == num_kv_pairs
    assert queries.min() >= context and np.all((queries - context) % 2 == 0)
    np.testing.assert_array_equal(np.sort(x[s, queries]), np.sort(keys))  # every key asked once
    answer = dict(zip(keys.tolist(), values.tolist()))
    assert [y[s, q] for q in queries] == [answer[k] for k in x[s, queries]]
    others = np.setdiff1d(np.arange(context, x.shape[1]), queries)
    assert np.all(y[s, others] == 0) and np.all(y[s, :context] == 0)
    if random_non_queries:
      assert x[s, others].min() >= 0 and x[s, others].max() < vocab_size
    else:
      assert np.all(x[s, others] == 0)
  assert np.all((mask == 0) | (mask == 1))


def test_zoology_example_layout():
  # Zoology's docstring example: vocab 12, 2 pairs, seq_len 16, no random fill.
  generate = jax.jit(mqar.generate, static_argnums=(1, 2, 3, 4, 5, 6))
  batch = generate(jax.random.key(0), 50, 12, 16, 2, 0.01, False)
  check_mqar(batch, 12, 2, random_non_queries=False)
  assert batch["x"].shape == (50, 16) and batch["x"].dtype == jnp.int32


def test_source_batches_and_eval_follow_the_rules(small_config):
  cfg = small_config("mqar")
  source = data.build(cfg, batch_size=4)
  assert source.task == "sequence" and source.vocab_size == source.output_dim == 32
  assert source.input_shape == (16,) and source.input_dtype == jnp.int32
  for step in (0, 7):
    check_mqar(source.host_batch(step), 32, 2, random_non_queries=True)
  evals = list(source.eval_batches(4))
  assert len(evals) == 3
  check_mqar({k: v[:2] for k, v in evals[-1].items()}, 32, 2, random_non_queries=True)
  assert evals[-1]["mask"][2:].sum() == 0
  np.testing.assert_array_equal(list(source.eval_batches(4))[0]["x"], evals[0]["x"])
  assert not np.array_equal(source.host_batch(0)["x"], source.host_batch(1)["x"])
  # The random fill really is random: many distinct noise tokens over a batch.
  assert len(np.unique(source.host_batch(0)["x"][:, 4:])) > 20


def test_gumbel_top_k_draws_sequentially_without_replacement():
  m, num = 5, 40_000
  logits = (0.3 - 1.0) * jnp.log(jnp.arange(1, m + 1, dtype=jnp.float32))  # power law, a = 0.3
  p = np.asarray(jax.nn.softmax(logits))
  uniforms = jax.random.uniform(jax.random.key(0), (num, m), minval=1e-12)
  draws = np.asarray(jax.jit(mqar.gumbel_top_k, static_argnums=2)(logits, uniforms, m))
  # k = m: each row is a permutation.
  np.testing.assert_array_equal(np.sort(draws, axis=1), np.tile(np.arange(m), (num, 1)))
  # First draw ~ p; second draw given the first = p renormalized over the rest.
  np.testing.assert_allclose(np.bincount(draws[:, 0], minlength=m) / num, p, atol=0.01)
  first_is_0 = draws[:, 0] == 0
  second = np.bincount(draws[first_is_0, 1], minlength=m) / first_is_0.sum()
  np.testing.assert_allclose(second, np.r_[0, p[1:] / p[1:].sum()], atol=0.015)


@pytest.mark.parametrize("overrides,match", [
    ({"seq_len": 7}, "seq_len=7 leaves no room"),
    ({"vocab_size": 5}, "vocab_size=5 is too small"),
    ({"power_a": 0.0}, "power_a must be in"),
    ({"num_kv_pairs": 0}, "num_kv_pairs must be >= 1"),
    ({"num_eval": 0}, "num_eval must be >= 1"),
])
def test_bad_values(small_config, overrides, match):
  with pytest.raises(ConfigError, match=match):
    data.build(small_config("mqar", **overrides), batch_size=4)
