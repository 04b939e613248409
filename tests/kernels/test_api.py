"""The public API: argument checks, final-state handling, default scale, and impl='auto' on CPU."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paperlab.errors import ConfigError
from paperlab.kernels import (CPU_AUTO, CPU_FEW_SEQUENCES, IMPLS, cpu_auto_impls, delta_rule,
                              linear_attention)

B, T, H, DK, DV = 2, 10, 2, 8, 4


def arrays(dtype=jnp.float32):
  rng = np.random.default_rng(0)
  q, k = (jnp.asarray(rng.normal(size=(B, T, H, DK)), dtype) for _ in range(2))
  k = k / jnp.linalg.norm(k, axis=-1, keepdims=True)
  v = jnp.asarray(rng.normal(size=(B, T, H, DV)), dtype)
  beta = jnp.asarray(rng.uniform(size=(B, T, H)), dtype)
  return q, k, v, beta


@pytest.mark.parametrize("change,message", [
    (dict(q=jnp.zeros((B, T, DK))), r"linear_attention: q must have shape \[B, T, H, Dk\], got \(2, 10, 8\)"),
    (dict(k=jnp.zeros((B, T, H, DK + 1))), r"k must have shape \[B, T, H, Dk\] = \(2, 10, 2, 8\) like q"),
    (dict(v=jnp.zeros((B, T + 1, H, DV))), r"v must have shape \[B, T, H, Dv\] with \[B, T, H\] = \(2, 10, 2\)"),
    (dict(g=jnp.zeros((H + 1,))), r"g must have shape \[H\] = \(2,\), got \(3,\)"),
    (dict(initial_state=jnp.zeros((B, H, DV, DK))), r"initial_state must have shape \[B, H, Dk, Dv\] = \(2, 2, 8, 4\)"),
    (dict(v=jnp.zeros((B, T, H, DV), jnp.int32)), "v must be float16/bfloat16/float32/float64, got int32"),
    (dict(v=jnp.zeros((B, T, H, DV), jnp.bfloat16)), "q, k and v must share a dtype"),
    (dict(chunk_size=48), r"chunk_size must be one of \(16, 32, 64, 128\), got 48"),
    (dict(impl="flash"), "unknown linear_attention impl 'flash'; valid: auto, pallas, reference, xla"),
    (dict(q=jnp.zeros((B, 0, H, DK)), k=jnp.zeros((B, 0, H, DK)), v=jnp.zeros((B, 0, H, DV))),
     r"at least one token"),
])
def test_linear_attention_rejects_bad_arguments(change, message):
  q, k, v, _ = arrays()
  kwargs = dict(q=q, k=k, v=v)
  kwargs.update(change)
  with pytest.raises(ConfigError, match=message):
    linear_attention(**kwargs)


def test_delta_rule_rejects_bad_beta():
  q, k, v, beta = arrays()
  with pytest.raises(ConfigError, match=r"delta_rule: beta must have shape \[B, T, H\] = \(2, 10, 2\), got \(2, 10\)"):
    delta_rule(q, k, v, beta[..., 0])


def test_final_state_only_on_request_and_float32_for_bf16():
  q, k, v, beta = arrays(jnp.bfloat16)
  for impl in ("reference", "xla"):
    o, s = linear_attention(q, k, v, impl=impl)
    assert o.shape == (B, T, H, DV) and o.dtype == jnp.bfloat16 and s is None
    o, s = delta_rule(q, k, v, beta, output_final_state=True, impl=impl)
    assert o.dtype == jnp.bfloat16 and s.shape == (B, H, DK, DV) and s.dtype == jnp.float32


def test_default_scale_is_inverse_sqrt_dk():
  q, k, v, beta = arrays()
  default = delta_rule(q, k, v, beta, impl="xla")[0]
  np.testing.assert_array_equal(default, delta_rule(q, k, v, beta, scale=DK ** -0.5, impl="xla")[0])
  np.testing.assert_allclose(linear_attention(q, k, v, scale=1.0)[0],
                             linear_attention(q, k, v)[0] * DK ** 0.5, rtol=1e-5, atol=1e-6)


def test_cpu_auto_table_names_real_impls():
  assert set(CPU_AUTO) == {"linear_attention", "delta_rule"}
  assert all(impl in IMPLS[1:] for row in CPU_AUTO.values() for impl in row)
  assert cpu_auto_impls("linear_attention", CPU_FEW_SEQUENCES) == CPU_AUTO["linear_attention"][::2]
  assert cpu_auto_impls("linear_attention", CPU_FEW_SEQUENCES + 1) == CPU_AUTO["linear_attention"][1:]


@pytest.mark.parametrize("op,batch", [("linear_attention", B), ("linear_attention", CPU_FEW_SEQUENCES),
                                      ("delta_rule", B)])       # B*H = 4 and 32 sequences
def test_auto_on_cpu_runs_the_table(op, batch):
  """Forward passes and gradients come from the impls `cpu_auto_impls` names, bit for bit."""
  rep = lambda x: jnp.tile(x, (batch // B,) + (1,) * (x.ndim - 1))
  q, k, v, beta = (rep(x) for x in arrays())
  fn = {"linear_attention": lambda impl, q: linear_attention(q, k, v, g=-jnp.ones((H,)), impl=impl),
        "delta_rule": lambda impl, q: delta_rule(q, k, v, beta, impl=impl)}[op]
  forward, gradient = cpu_auto_impls(op, batch * H)
  np.testing.assert_array_equal(fn("auto", q)[0], fn(forward, q)[0])
  grad = lambda impl: jax.grad(lambda q: jnp.sum(fn(impl, q)[0] ** 2))(q)
  np.testing.assert_array_equal(grad("auto"), grad(gradient))
  assert np.any(np.asarray(fn("xla", q)[0]) != np.asarray(fn("reference", q)[0]))  # distinguishable
