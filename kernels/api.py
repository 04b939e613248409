"""Public entry points: `linear_attention` and `delta_rule`, with checks and implementation choice.

Layout [B, T, H, D] for q, k, v; every function returns (o, final_state) with final_state
[B, H, Dk, Dv] in float32 (float64 for float64 inputs), or None unless output_final_state=True.
The implementations, each differentiable w.r.t. every array argument:
  "reference"  token-by-token `lax.scan` (ground truth),
  "xla"        chunked form in pure jnp,
  "pallas"     Pallas kernels with a custom VJP (GPU or TPU layout; interpreter on CPU),
  "auto"       "pallas" on GPU/TPU; on CPU the fastest measured paths from `CPU_AUTO` below
               (one for a forward pass, by the number of sequences B*H, one for gradients).
"""
import functools

import jax
import jax.numpy as jnp

from paperlab.errors import ConfigError, unknown_name_error
from paperlab.kernels.delta_rule_pallas import delta_rule_pallas
from paperlab.kernels.delta_rule_reference import delta_rule_reference
from paperlab.kernels.delta_rule_xla import delta_rule_xla
from paperlab.kernels.linear_attention_pallas import linear_attention_pallas
from paperlab.kernels.linear_attention_reference import linear_attention_reference
from paperlab.kernels.linear_attention_xla import linear_attention_xla

IMPLS = ("auto", "reference", "xla", "pallas")
CHUNK_SIZES = (16, 32, 64, 128)
_FLOATS = (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64)

# impl="auto" on CPU, per op: (forward impl for at most CPU_FEW_SEQUENCES sequences B*H,
# forward impl for more, gradient impl). Under differentiation the gradient impl runs (its
# forward and its custom VJP); a plain forward pass runs a forward impl. Measured with
# scripts/bench_kernels.py on the 2-core CPU (jax 0.10.2, f32, D = 64 and 32, chunk 64;
# kernels/BENCHMARKS.md has the tables):
# - gradients: the chunked "xla" path at every shape measured. The token-by-token scan's
#   autodiff backward is 23-31x slower for linear attention and 6-13x for the delta rule at
#   B*H = 2, T = 512..16K (it visits T steps that each save a Dk x Dv state), 1.3-5.4x at
#   training shapes (B x T x H = 4x1024x4, 16x256x4, 64x64x2).
# - delta-rule forward: the scan, 2.8-3.2x faster than the chunked WY form at B*H = 2 and 3-8x
#   at the training shapes (the WY transform costs more than the recurrence saves on a CPU).
# - linear-attention forward: the scan for a few sequences (1.2-1.5x faster at B*H = 2 up to
#   T = 8K, a tie at 16K; 1.24x at B*H = 16), the chunked form for many (a tie at B*H = 64,
#   1.4x faster at 128).
# Interpret-mode Pallas is never the fastest on CPU.
CPU_FEW_SEQUENCES = 16
CPU_AUTO = {
    "linear_attention": ("reference", "xla", "xla"),
    "delta_rule": ("reference", "reference", "xla"),
}


def _on_accelerator() -> bool:
  return jax.default_backend() in ("gpu", "cuda", "rocm", "tpu")


def _forward_of_gradient_of(forward_fn, gradient_fn):
  """`forward_fn` when only evaluated; under differentiation, `gradient_fn` and its VJP."""

  @jax.custom_vjp
  def fn(*args):
    return forward_fn(*args)

  def fn_fwd(*args):
    return jax.vjp(gradient_fn, *args)

  def fn_bwd(vjp, cotangents):
    return vjp(cotangents)

  fn.defvjp(fn_fwd, fn_bwd)
  return fn


def cpu_auto_impls(op: str, num_sequences: int) -> tuple[str, str]:
  """(forward impl, gradient impl) of impl="auto" on CPU for B*H = num_sequences."""
  few, many, gradient = CPU_AUTO[op]
  return (few if num_sequences <= CPU_FEW_SEQUENCES else many), gradient


def _dispatch(op: str, impl: str, impls: dict, num_sequences: int):
  if impl != "auto":
    return impls[impl]
  if _on_accelerator():
    return impls["pallas"]
  forward, gradient = cpu_auto_impls(op, num_sequences)
  if forward == gradient:
    return impls[forward]
  return _forward_of_gradient_of(impls[forward], impls[gradient])


def _shape_error(op: str, name: str, expected: str, x) -> ConfigError:
  return ConfigError(f"{op}: {name} must have shape {expected}, got {tuple(x.shape)}")


def _check(op: str, q, k, v, *, beta=None, g=None, initial_state=None, chunk_size: int,
           impl: str):
  if impl not in IMPLS:
    raise unknown_name_error(f"{op} impl", impl, IMPLS)
  if chunk_size not in CHUNK_SIZES:
    raise ConfigError(f"{op}: chunk_size must be one of {CHUNK_SIZES}, got {chunk_size!r}")
  if q.ndim != 4:
    raise _shape_error(op, "q", "[B, T, H, Dk]", q)
  b, t, h, dk = q.shape
  if t < 1:
    raise ConfigError(f"{op}: q must have at least one token (T >= 1), got shape {q.shape}")
  if k.shape != q.shape:
    raise _shape_error(op, "k", f"[B, T, H, Dk] = {tuple(q.shape)} like q", k)
  if v.ndim != 4 or v.shape[:3] != (b, t, h):
    raise _shape_error(op, "v", f"[B, T, H, Dv] with [B, T, H] = {(b, t, h)}", v)
  for name, x in (("q", q), ("k", k), ("v", v)):
    if x.dtype not in _FLOATS:
      raise ConfigError(f"{op}: {name} must be float16/bfloat16/float32/float64, got {x.dtype}")
  if not q.dtype == k.dtype == v.dtype:
    raise ConfigError(f"{op}: q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
  if beta is not None and beta.shape != (b, t, h):
    raise _shape_error(op, "beta", f"[B, T, H] = {(b, t, h)}", beta)
  if g is not None and g.shape != (h,):
    raise _shape_error(op, "g", f"[H] = {(h,)}", g)
  if initial_state is not None and initial_state.shape != (b, h, dk, v.shape[-1]):
    raise _shape_error(op, "initial_state", f"[B, H, Dk, Dv] = {(b, h, dk, v.shape[-1])}",
                       initial_state)


@functools.partial(jax.jit, static_argnames=("scale", "output_final_state", "chunk_size", "impl"))
def linear_attention(q: jax.Array, k: jax.Array, v: jax.Array, *, g: jax.Array | None = None,
                     scale: float | None = None, initial_state: jax.Array | None = None,
                     output_final_state: bool = False, chunk_size: int = 64,
                     impl: str = "auto") -> tuple[jax.Array, jax.Array | None]:
  """Causal linear attention with an optional per-head decay (Lightning Attention-2, TransNormerLLM).

      S_t = exp(g) S_{t-1} + k_t v_t^T,   o_t = scale * q_t^T S_t

  Args:
    q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; float32, bfloat16 (f32 state and accumulation).
    g: per-head log-decay [H], <= 0 (lambda = exp(g)); None for no decay. May be learned.
    scale: defaults to Dk^-0.5.
    initial_state: [B, H, Dk, Dv] or None (zeros).
    output_final_state: also return S_T.
    chunk_size: 16, 32, 64 or 128 (128 suits the TPU's MXU); any T works (zero padding).
    impl: "auto", "reference", "xla" or "pallas".
  Returns:
    (o [B, T, H, Dv] in q's dtype, S_T [B, H, Dk, Dv] float32 or None).
  """
  _check("linear_attention", q, k, v, g=g, initial_state=initial_state, chunk_size=chunk_size,
         impl=impl)
  scale = q.shape[-1] ** -0.5 if scale is None else scale
  impls = {
      "reference": lambda q, k, v, g, s0: linear_attention_reference(q, k, v, g, scale, s0),
      "xla": lambda q, k, v, g, s0: linear_attention_xla(q, k, v, g, scale, s0, chunk_size),
      "pallas": lambda q, k, v, g, s0: linear_attention_pallas(q, k, v, g, scale, s0, chunk_size),
  }
  run = _dispatch("linear_attention", impl, impls, q.shape[0] * q.shape[2])
  o, s = run(q, k, v, g, initial_state)
  return o, (s if output_final_state else None)


@functools.partial(jax.jit, static_argnames=("scale", "output_final_state", "chunk_size", "impl"))
def delta_rule(q: jax.Array, k: jax.Array, v: jax.Array, beta: jax.Array, *,
               scale: float | None = None, initial_state: jax.Array | None = None,
               output_final_state: bool = False, chunk_size: int = 64,
               impl: str = "auto") -> tuple[jax.Array, jax.Array | None]:
  """The delta rule of DeltaNet (Yang et al. 2024), chunked with the WY/UT transform.

      S_t = S_{t-1} + k_t (beta_t (v_t - S_{t-1}^T k_t))^T,   o_t = scale * q_t^T S_t

  Keys should be L2-normalised and beta in (0, 1] (or (0, 2) for negative eigenvalues): the
  transition I - beta k k^T is only contractive when beta ||k||^2 <= 2.

  Args:
    q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; float32, bfloat16 (f32 state and accumulation).
    beta: [B, T, H] writing strengths.
    scale: defaults to Dk^-0.5.
    initial_state: [B, H, Dk, Dv] or None (zeros).
    output_final_state: also return S_T.
    chunk_size: 16, 32, 64 or 128 (128 suits the TPU's MXU); any T works (zero padding).
    impl: "auto", "reference", "xla" or "pallas".
  Returns:
    (o [B, T, H, Dv] in q's dtype, S_T [B, H, Dk, Dv] float32 or None).
  """
  _check("delta_rule", q, k, v, beta=beta, initial_state=initial_state, chunk_size=chunk_size,
         impl=impl)
  scale = q.shape[-1] ** -0.5 if scale is None else scale
  impls = {
      "reference": lambda q, k, v, b, s0: delta_rule_reference(q, k, v, b, scale, s0),
      "xla": lambda q, k, v, b, s0: delta_rule_xla(q, k, v, b, scale, s0, chunk_size),
      "pallas": lambda q, k, v, b, s0: delta_rule_pallas(q, k, v, b, scale, s0, chunk_size),
  }
  run = _dispatch("delta_rule", impl, impls, q.shape[0] * q.shape[2])
  o, s = run(q, k, v, beta, initial_state)
  return o, (s if output_final_state else None)
