"""ALiBi-like per-head decay slopes (Press et al. 2022; TransNormerLLM / Lightning Attention)."""
import numpy as np
import pytest

from paperlab.kernels import alibi_log_decay, alibi_slopes


def test_power_of_two_heads_closed_form():
  np.testing.assert_allclose(alibi_slopes(8), [2.0 ** -(i + 1) for i in range(8)])
  np.testing.assert_allclose(alibi_slopes(4), [2.0 ** -(2 * (i + 1)) for i in range(4)])


def test_other_head_counts_interleave_the_next_power_of_two():
  """ALiBi's rule: the 4-head slopes, then every other 8-head slope."""
  np.testing.assert_allclose(alibi_slopes(6), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3])
  assert alibi_slopes(1).tolist() == [2.0 ** -8]


def test_log_decay_is_minus_the_slopes():
  g = np.asarray(alibi_log_decay(5))
  np.testing.assert_allclose(g, -alibi_slopes(5))
  assert np.all(g < 0) and np.all(np.exp(g) > 0.6)


def test_rejects_zero_heads():
  with pytest.raises(ValueError, match="num_heads must be >= 1, got 0"):
    alibi_slopes(0)
