"""TrAct: Petersen, Borgelt, Ermon, "TrAct: Making First-layer Pre-Activations Trainable",
NeurIPS 2024 (arXiv 2410.23970).

The first layer z = x W (+ b), with input rows x [b, n] (b = batch x positions, n = fan-in) and a
kernel W [n, m], gets the gradient of its weights replaced by

    G_tract = (x^T x / b + lam I_n)^{-1} G,        G = x^T dL/dz  (the ordinary kernel gradient)

This is what the official code (Felix-Petersen/tract, src/tract.py) computes. It is the closed form
of a regularized least-squares step on the pre-activations (our statement of the paper's
derivation; the code is the authority on where 1/b sits):

    W - eta G_tract = argmin_V  (1/b) ||x V - z*||_F^2 + lam ||V - W||_F^2,
    z* = x W - eta b dL/dz      (a gradient step on each row's pre-activation)

When b < n the n x n solve is replaced by an equivalent b x b one. From G alone (Woodbury):

    G_tract = (G - x^T (x x^T + b lam I_b)^{-1} x G) / lam          (two extra b x n x m matmuls)

and, when the caller also passes dL/dz (`tract_output_grads`, rows [b, m]), by the push-through
identity (x^T x / b + lam I)^{-1} x^T = x^T (x x^T / b + lam I)^{-1}:

    G_tract = x^T (x x^T / b + lam I_b)^{-1} dL/dz

which costs one b x n x m matmul, the same as the ordinary G it replaces: the autodiff kernel
gradient is then unused and XLA drops it, so TrAct costs only the b x b Gram and solve. This is our
optimization, not in the paper or the official code; the result is the same matrix.

Both are float32 Cholesky solves whatever the dtype of the gradient (the official 'cholesky_inverse'
option is wrong: it passes the SPD matrix where torch expects its Cholesky factor; we solve). As
lam -> inf, G_tract -> G / lam; the paper uses lam = 0.1 with the baseline's learning rate.

Place in a chain: on the raw gradient, before the optimizer (after clipping and noise when those are
on; the official code has neither). Only the masked first-layer kernel changes; the bias and every
other leaf pass through. The update takes the layer's inputs as the keyword `tract_inputs` (and optionally
`tract_output_grads`, see above: then the masked kernel's incoming gradient is ignored and
recomputed as x^T dL/dz, so no earlier transform in the chain may have changed it):

    tx = optax.chain(tract(0.1, mask=mask), optax.sgd(0.1, momentum=0.9))
    updates, state = tx.update(grads, state, params, tract_inputs=conv_patches(images, (3, 3)))

Kernel layouts: Flax Dense [n, m] and Conv [kh, kw, C, O], the latter flattened to [kh*kw*C, O]
in Flax's (kh, kw, C) order; `conv_patches` builds x in that order. Inputs with more than two axes
are flattened to [-1, n] (a ViT patch embedding applied to [B, T, n] gives b = B * T rows).
Dilated kernels are supported by `conv_patches`; grouped convs are not (nor in the official code).
"""
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import optax

from paperlab.errors import ConfigError
from paperlab.optim import paths


def _as_rows(inputs: jax.Array) -> jax.Array:
  return inputs.reshape(-1, inputs.shape[-1])


def _cholesky_solve(spd: jax.Array, rhs: jax.Array) -> jax.Array:
  """spd^{-1} rhs through the Cholesky factor: spd^{-1} = L^{-T} L^{-1} with L^{-1} from one
  triangular solve against the identity. The explicit inverse keeps every other product a plain
  matmul: XLA:CPU runs matmuls on the column-major results of LAPACK solves ~10x slower
  (measured with jax 0.10.2, a 128 x 512 right-hand side: 20 ms via cho_solve, 3 ms this way)."""
  chol = jnp.linalg.cholesky(spd)
  chol_inv = jax.scipy.linalg.solve_triangular(chol, jnp.eye(spd.shape[0], dtype=spd.dtype),
                                               lower=True)
  return (chol_inv.T @ chol_inv) @ rhs


def tract_gradient(grad: jax.Array, inputs: jax.Array, lam) -> jax.Array:
  """(x^T x / b + lam I)^{-1} grad for one kernel, in float32, returned in grad's dtype.

  grad: a kernel gradient [..., m] whose leading axes flatten to n; inputs: x [b, n] (or [..., n]).
  """
  x = _as_rows(inputs).astype(jnp.float32)
  b, n = x.shape
  g = grad.reshape(-1, grad.shape[-1]).astype(jnp.float32)
  if g.shape[0] != n:
    raise ConfigError(f'tract_inputs have {n} features per row but the TrAct kernel of shape'
                      f' {grad.shape} has fan-in {g.shape[0]}')
  lam = jnp.asarray(lam, jnp.float32)
  if b < n:  # Woodbury: a b x b system instead of n x n.
    gram = x @ x.T + (b * lam) * jnp.eye(b, dtype=jnp.float32)
    out = (g - x.T @ _cholesky_solve(gram, x @ g)) / lam
  else:
    out = _cholesky_solve(x.T @ x / b + lam * jnp.eye(n, dtype=jnp.float32), g)
  return out.reshape(grad.shape).astype(grad.dtype)


def tract_gradient_from_output_grads(output_grads: jax.Array, inputs: jax.Array, lam,
                                     kernel_shape: Sequence[int]) -> jax.Array:
  """(x^T x / b + lam I)^{-1} x^T dL/dz for one kernel, in float32 (push-through form when b < n).

  output_grads: dL/dz [b, m] (or [..., m], the layer's output rows in the order of `inputs`);
  inputs: x [b, n]; kernel_shape: the kernel's shape (leading axes flatten to n, last is m).
  """
  x = _as_rows(inputs).astype(jnp.float32)
  delta = output_grads.reshape(-1, output_grads.shape[-1]).astype(jnp.float32)
  b, n = x.shape
  if delta.shape[0] != b or delta.shape[1] != kernel_shape[-1] or math.prod(kernel_shape[:-1]) != n:
    raise ConfigError(f'tract_output_grads of shape {output_grads.shape} do not match tract_inputs'
                      f' {inputs.shape} and the TrAct kernel {tuple(kernel_shape)}: expected'
                      f' [{b}, {kernel_shape[-1]}] rows')
  lam = jnp.asarray(lam, jnp.float32)
  if b < n:
    gram = x @ x.T / b + lam * jnp.eye(b, dtype=jnp.float32)
    out = x.T @ _cholesky_solve(gram, delta)
  else:
    out = _cholesky_solve(x.T @ x / b + lam * jnp.eye(n, dtype=jnp.float32), x.T @ delta)
  return out.reshape(kernel_shape)


def tract(lam: float = 0.1, *, mask: paths.MaskOrFn) -> optax.GradientTransformationExtraArgs:
  """TrAct on the kernel(s) selected by `mask`; see the module docstring.

  Args:
    lam: the regularization lambda (paper default 0.1); may be a traced array (hyperparameter
      injection).
    mask: a bool tree like params (or a prefix, or a callable params -> tree) that is True at the
      first-layer kernel. Every selected leaf must have fan-in n = tract_inputs.shape[-1].

  update(updates, state, params=None, *, tract_inputs, tract_output_grads=None) with tract_inputs
  the layer's input rows [b, n] of the current batch (`dense_inputs`, `conv_patches`) and, optionally,
  tract_output_grads = dL/dz [b, m] of the same rows (the cheaper path of the module docstring).
  """

  def init_fn(params):
    if not any(paths.resolve_mask(mask, params)):
      raise ConfigError('tract: the mask selects no parameter; it must be True at the'
                        ' first-layer kernel')
    return optax.EmptyState()

  def update_fn(updates, state, params=None, *, tract_inputs=None, tract_output_grads=None,
                **extra_args):
    del params, extra_args
    if tract_inputs is None:
      raise ConfigError('tract needs the first layer\'s inputs: call'
                        ' tx.update(grads, state, params, tract_inputs=x) with x [b, n]')
    flags = paths.resolve_mask(mask, updates)
    leaves, treedef = jax.tree.flatten(updates)
    if tract_output_grads is None:
      new = lambda g: tract_gradient(g, tract_inputs, lam)
    else:
      new = lambda g: tract_gradient_from_output_grads(
          tract_output_grads, tract_inputs, lam, g.shape).astype(g.dtype)
    leaves = [new(g) if f else g for g, f in zip(leaves, flags)]
    return jax.tree.unflatten(treedef, leaves), state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def dense_inputs(x: jax.Array) -> jax.Array:
  """tract_inputs for a Dense first layer: its inputs as rows [b, n] (leading axes flattened)."""
  return _as_rows(x)


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)


def conv_patches(images: jax.Array, kernel_size: int | Sequence[int],
                 strides: int | Sequence[int] = 1,
                 padding: str | int | Sequence[tuple[int, int]] = 'SAME',
                 kernel_dilation: int | Sequence[int] = 1) -> jax.Array:
  """tract_inputs for a Conv first layer: every patch the kernel sees, as rows in Flax order.

  images: [B, H, W, C]. Returns [B * H_out * W_out, kh * kw * C]
  with features ordered (kh, kw, C), so that patches @ kernel.reshape(-1, O) equals the Flax Conv
  output (without bias). padding: 'SAME' | 'VALID' | an int | ((lo, hi), (lo, hi)), as in Flax.
  (lax.conv_general_dilated_patches orders features (C, kh, kw); we transpose.)
  """
  if images.ndim != 4:
    raise ConfigError(f'conv_patches expects images [B, H, W, C], got shape {images.shape}')
  kh, kw = _pair(kernel_size)
  if isinstance(padding, int):
    padding = ((padding, padding), (padding, padding))
  elif not isinstance(padding, str):
    padding = tuple(tuple(p) for p in padding)
  c = images.shape[-1]
  patches = jax.lax.conv_general_dilated_patches(
      images, filter_shape=(kh, kw), window_strides=_pair(strides), padding=padding,
      rhs_dilation=_pair(kernel_dilation), dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      precision=jax.lax.Precision.HIGHEST)  # a conv with 0/1 filters: keep it exact on TPU/GPU
  patches = patches.reshape(-1, c, kh, kw).transpose(0, 2, 3, 1)
  return patches.reshape(-1, kh * kw * c)
