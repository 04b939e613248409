"""delta_rule: every implementation against the token-by-token reference, on awkward cases.

Keys are L2-normalised (as DeltaNet does; unnormalised keys make (I + L)^-1 explode, fla #537).
The XLA path covers the grid of awkward cases in float64 (T in {1, 63, 100, 1000}, D in
{16, 60, 64, 100}, chunks 16/32/64/128, beta uniform / near 0 / near 1 / in (1, 2), with and
without S0). The triangular inverse runs by doubling in the XLA path and the TPU layout and by
forward substitution in the GPU layout; test_tril_inverse checks all three methods directly. Each Pallas layout gets a float32 subset and
lowers for real Triton (cuda) and Mosaic (tpu) here on CPU.
"""
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import pytest

from paperlab.kernels import delta_rule
from paperlab.kernels.delta_rule_pallas import delta_rule_pallas


def make_fn(impl: str, chunk: int, init: bool, scale=None):
  """fn(q, k, v, beta, [S0]) -> (o, S_T) for reference/xla/auto/pallas_gpu/pallas_tpu."""
  def fn(q, k, v, beta, *rest):
    s0 = rest[0] if init else None
    sc = q.shape[-1] ** -0.5 if scale is None else scale
    if impl.startswith("pallas_"):
      return delta_rule_pallas(q, k, v, beta, sc, s0, chunk, layout=impl[len("pallas_"):])
    return delta_rule(q, k, v, beta, scale=scale, initial_state=s0, output_final_state=True,
                      chunk_size=chunk, impl=impl)
  return fn


def arg_names(init):
  return ["q", "k", "v", "beta"] + (["initial_state"] if init else [])


def run_pair(kt, impl, b, t, h, dk, dv, chunk, beta, init, dtype, seed=0):
  args, cot = kt.inputs(seed, b, t, h, dk, dv, dtype, beta=beta, init=init, l2_keys=True)
  ref = kt.value_and_grads(make_fn("reference", chunk, init), args, cot)
  out = kt.value_and_grads(make_fn(impl, chunk, init), args, cot)
  return ref, out, arg_names(init)


# (B, T, H, Dk, Dv, chunk, beta, with S0)
XLA_CASES = [
    (1, 1, 1, 16, 16, 16, "uniform", True),
    (2, 63, 2, 60, 16, 16, "near0", False),
    (1, 63, 1, 16, 64, 64, "near1", True),
    (1, 100, 2, 16, 60, 32, "negative_eigenvalues", True),
    (1, 100, 3, 64, 100, 64, "uniform", False),
    (2, 100, 2, 60, 60, 128, "near1", True),
    (1, 1000, 1, 100, 64, 64, "near0", True),
]


@pytest.mark.parametrize("case", XLA_CASES, ids=lambda c: "-".join(map(str, c)))
def test_xla_matches_reference_float64(kt, case):
  *shape, chunk, beta, init = case
  with jax.enable_x64(True):
    ref, out, names = run_pair(kt, "xla", *shape, chunk, beta, init, jnp.float64)
    kt.compare(ref, out, names, kt.TOL_F64)


def test_auto_float32_matches_reference(kt):
  ref, out, names = run_pair(kt, "auto", 2, 100, 2, 60, 100, 32, "uniform", True, jnp.float32)
  kt.compare(ref, out, names, kt.TOL_F32)


# (layout, B, T, H, Dk, Dv, chunk, beta, with S0): Dv = 100 pads to 128 = two GPU Dv tiles.
PALLAS_CASES = [
    ("gpu", 2, 100, 2, 60, 100, 32, "near1", True),
    ("gpu", 1, 63, 1, 16, 16, 16, "near0", False),
    ("tpu", 1, 100, 2, 60, 16, 16, "uniform", True),
    ("tpu", 1, 63, 1, 16, 16, 128, "negative_eigenvalues", False),
]


@pytest.mark.parametrize("case", PALLAS_CASES, ids=lambda c: "-".join(map(str, c)))
def test_pallas_matches_reference_float32(kt, case):
  layout, *shape, chunk, beta, init = case
  ref, out, names = run_pair(kt, f"pallas_{layout}", *shape, chunk, beta, init, jnp.float32)
  kt.compare(ref, out, names, kt.TOL_F32)


def test_bfloat16_inputs(kt):
  """bf16 in, bf16 out and grads, f32 state; close to the f32 reference on the same inputs."""
  chunk, init = 32, True
  args, cot = kt.inputs(3, 1, 100, 2, 64, 64, jnp.bfloat16, beta="uniform", init=False,
                        l2_keys=True)
  args = args + [jax.random.normal(jax.random.key(0), (1, 2, 64, 64), jnp.float32)]
  upcast = [a.astype(jnp.float32) for a in args]
  o_ref, s_ref, g_ref = kt.value_and_grads(make_fn("reference", chunk, init), upcast, cot)
  for impl in ("xla", "pallas_gpu"):
    o, s, grads = kt.value_and_grads(make_fn(impl, chunk, init), args, cot)
    assert o.dtype == jnp.bfloat16 and s.dtype == jnp.float32
    assert [x.dtype for x in grads] == [a.dtype for a in args]
    kt.assert_close(f"{impl} o", o_ref, o, kt.TOL_BF16_OUT)
    kt.assert_close(f"{impl} final_state", s_ref, s, kt.TOL_BF16_OUT)
    for name, a, b in zip(arg_names(init), g_ref, grads):
      kt.assert_close(f"{impl} d{name}", a, b, kt.TOL_BF16_GRAD)


@pytest.mark.parametrize("layout,platform,calls", [("gpu", "cuda", "__gpu$xla.gpu.triton"),
                                                   ("tpu", "tpu", "tpu_custom_call")])
def test_pallas_lowers_for_the_real_backend(layout, platform, calls):
  """Forward and backward lower through Pallas-Triton / Mosaic (not the interpreter)."""
  q = jnp.ones((1, 100, 2, 60), jnp.bfloat16)
  v = jnp.ones((1, 100, 2, 100), jnp.bfloat16)
  beta, s0 = jnp.full((1, 100, 2), 0.5, jnp.bfloat16), jnp.zeros((1, 2, 60, 100))

  def loss(q, k, v, beta, s0):
    o, s = delta_rule_pallas(q, k, v, beta, 0.1, s0, 64, layout=layout, interpret=False)
    return jnp.sum(o.astype(jnp.float32)) + jnp.sum(s)

  grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3, 4)))
  text = grad.trace(q, q, v, beta, s0).lower(lowering_platforms=(platform,)).as_text()
  assert text.count(calls) == 3                    # forward; backward = states pass + reverse pass


@hypothesis.settings(max_examples=3, deadline=None, derandomize=True)
@hypothesis.given(b=st.integers(1, 2), t=st.integers(1, 48), h=st.integers(1, 3),
                  dk=st.integers(1, 40), dv=st.integers(1, 40), chunk=st.sampled_from([16, 32, 64]),
                  beta=st.sampled_from(["uniform", "near1"]), init=st.booleans())
def test_random_shapes_xla_matches_reference(kt, b, t, h, dk, dv, chunk, beta, init):
  with jax.enable_x64(True):
    ref, out, names = run_pair(kt, "xla", b, t, h, dk, dv, chunk, beta, init, jnp.float64, seed=t)
    kt.compare(ref, out, names, kt.TOL_F64)
