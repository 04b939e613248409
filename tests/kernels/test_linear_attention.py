"""linear_attention: every implementation against the token-by-token reference, on awkward cases.

The XLA path covers the full grid of awkward cases in float64 (T in {1, 63, 100, 1000}, D in
{16, 60, 64, 100}, chunks 16/32/64/128, decay none/weak/mixed/strong (g = -5), with and without
S0). Interpret-mode Pallas compiles are slow, so each layout gets a judicious float32 subset plus
one bfloat16 case; both layouts also lower for real Triton (cuda) and Mosaic (tpu) here on CPU.
"""
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import pytest

from paperlab.kernels import linear_attention
from paperlab.kernels.linear_attention_pallas import linear_attention_pallas


def make_fn(impl: str, chunk: int, decay, init: bool, scale=None):
  """fn(q, k, v, [g], [S0]) -> (o, S_T) for impl in reference/xla/pallas/auto/pallas_gpu/tpu."""
  def fn(q, k, v, *rest):
    rest = list(rest)
    g = rest.pop(0) if decay else None
    s0 = rest.pop(0) if init else None
    if impl.startswith("pallas_"):
      sc = q.shape[-1] ** -0.5 if scale is None else scale
      return linear_attention_pallas(q, k, v, g, sc, s0, chunk, layout=impl[len("pallas_"):])
    return linear_attention(q, k, v, g=g, scale=scale, initial_state=s0, output_final_state=True,
                            chunk_size=chunk, impl=impl)
  return fn


def arg_names(decay, init):
  return ["q", "k", "v"] + (["g"] if decay else []) + (["initial_state"] if init else [])


def run_pair(kt, impl, b, t, h, dk, dv, chunk, decay, init, dtype, seed=0):
  args, cot = kt.inputs(seed, b, t, h, dk, dv, dtype, decay=decay, init=init)
  ref = kt.value_and_grads(make_fn("reference", chunk, decay, init), args, cot)
  out = kt.value_and_grads(make_fn(impl, chunk, decay, init), args, cot)
  return ref, out, arg_names(decay, init)


# (B, T, H, Dk, Dv, chunk, decay, with S0)
XLA_CASES = [
    (1, 1, 1, 16, 16, 16, "strong", True),
    (2, 63, 2, 60, 16, 16, None, False),
    (1, 63, 1, 16, 64, 64, "weak", True),
    (1, 100, 2, 16, 60, 32, "strong", True),
    (1, 100, 3, 64, 100, 64, "mixed", False),
    (2, 100, 2, 60, 60, 128, "mixed", True),
    (1, 1000, 1, 100, 64, 64, "mixed", True),
]


@pytest.mark.parametrize("case", XLA_CASES, ids=lambda c: "-".join(map(str, c)))
def test_xla_matches_reference_float64(kt, case):
  *shape, chunk, decay, init = case
  with jax.enable_x64(True):
    ref, out, names = run_pair(kt, "xla", *shape, chunk, decay, init, jnp.float64)
    kt.compare(ref, out, names, kt.TOL_F64)


def test_auto_float32_matches_reference(kt):
  """auto (xla under differentiation on CPU) in float32, the dtype it runs in."""
  decay, init = "mixed", True
  ref, out, names = run_pair(kt, "auto", 2, 100, 2, 60, 100, 32, decay, init, jnp.float32)
  kt.compare(ref, out, names, kt.TOL_F32)


# (layout, B, T, H, Dk, Dv, chunk, decay, with S0): Dv = 100 pads to 128 = two GPU Dv tiles.
PALLAS_CASES = [
    ("gpu", 2, 100, 2, 60, 100, 32, "mixed", True),
    ("gpu", 1, 63, 1, 16, 16, 16, None, False),
    ("tpu", 1, 100, 2, 60, 16, 16, "strong", True),
    ("tpu", 1, 63, 1, 16, 16, 128, "weak", False),
]


@pytest.mark.parametrize("case", PALLAS_CASES, ids=lambda c: "-".join(map(str, c)))
def test_pallas_matches_reference_float32(kt, case):
  layout, *shape, chunk, decay, init = case
  ref, out, names = run_pair(kt, f"pallas_{layout}", *shape, chunk, decay, init, jnp.float32)
  kt.compare(ref, out, names, kt.TOL_F32)


def test_bfloat16_inputs(kt):
  """bf16 in, bf16 out and bf16 grads, f32 state; close to the f32 reference on the same inputs."""
  decay, init, chunk = "mixed", True, 32
  args, cot = kt.inputs(3, 1, 100, 2, 64, 64, jnp.bfloat16, decay=None, init=False)
  g = jnp.asarray(kt.DECAYS[decay](2), jnp.float32)
  s0 = jax.random.normal(jax.random.key(0), (1, 2, 64, 64), jnp.float32)
  args = args + [g, s0]
  upcast = [a.astype(jnp.float32) for a in args]
  o_ref, s_ref, g_ref = kt.value_and_grads(make_fn("reference", chunk, decay, init), upcast, cot)
  for impl in ("xla", "pallas_gpu"):
    o, s, grads = kt.value_and_grads(make_fn(impl, chunk, decay, init), args, cot)
    assert o.dtype == jnp.bfloat16 and s.dtype == jnp.float32
    assert [x.dtype for x in grads] == [a.dtype for a in args]
    kt.assert_close(f"{impl} o", o_ref, o, kt.TOL_BF16_OUT)
    kt.assert_close(f"{impl} final_state", s_ref, s, kt.TOL_BF16_OUT)
    for name, a, b in zip(arg_names(decay, init), g_ref, grads):
      kt.assert_close(f"{impl} d{name}", a, b, kt.TOL_BF16_GRAD)


def test_padding_does_not_decay_the_final_state(kt):
  """T = 63 with chunk 64: the padded step must not decay S_T (kernels.md's padding trap)."""
  args, _ = kt.inputs(5, 1, 63, 2, 16, 16, decay="weak", init=True)
  q, k, v, g, s0 = args
  ref = make_fn("reference", 64, "weak", True)(*args)[1]
  padded = [jnp.pad(x, ((0, 0), (0, 1), (0, 0), (0, 0))) for x in (q, k, v)]
  decayed = make_fn("reference", 64, "weak", True)(*padded, g, s0)[1]
  assert kt.rel_rms(ref, decayed) > 1e-2                  # so the check below can fail
  for impl in ("xla", "pallas_gpu"):
    kt.assert_close(impl, ref, make_fn(impl, 64, "weak", True)(*args)[1], kt.TOL_F32)


@pytest.mark.parametrize("layout,platform,calls", [("gpu", "cuda", "__gpu$xla.gpu.triton"),
                                                   ("tpu", "tpu", "tpu_custom_call")])
def test_pallas_lowers_for_the_real_backend(layout, platform, calls):
  """Forward and backward lower through Pallas-Triton / Mosaic (not the interpreter)."""
  q = jnp.ones((1, 100, 2, 60), jnp.bfloat16)
  v = jnp.ones((1, 100, 2, 100), jnp.bfloat16)
  g, s0 = -jnp.ones((2,)), jnp.zeros((1, 2, 60, 100))

  def loss(q, k, v, g, s0):
    o, s = linear_attention_pallas(q, k, v, g, 0.1, s0, 64, layout=layout, interpret=False)
    return jnp.sum(o.astype(jnp.float32)) + jnp.sum(s)

  grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3, 4)))
  text = grad.trace(q, q, v, g, s0).lower(lowering_platforms=(platform,)).as_text()
  assert text.count(calls) == 3                    # forward; backward = states pass + reverse pass


@hypothesis.settings(max_examples=3, deadline=None, derandomize=True)
@hypothesis.given(b=st.integers(1, 2), t=st.integers(1, 48), h=st.integers(1, 3),
                  dk=st.integers(1, 40), dv=st.integers(1, 40), chunk=st.sampled_from([16, 32, 64]),
                  decay=st.sampled_from([None, "mixed", "strong"]), init=st.booleans())
def test_random_shapes_xla_matches_reference(kt, b, t, h, dk, dv, chunk, decay, init):
  with jax.enable_x64(True):
    ref, out, names = run_pair(kt, "xla", b, t, h, dk, dv, chunk, decay, init, jnp.float64, seed=t)
    kt.compare(ref, out, names, kt.TOL_F64)
