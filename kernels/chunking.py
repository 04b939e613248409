"""How the XLA paths walk a sequence: blocks of chunks, sliced straight from [B, T, H, D].

The sequence (zero-padded at the end) is cut into blocks of S chunks of C tokens. A `lax.scan`
visits the blocks, slicing each one out of the [B, T_pad, H, D] arrays and writing its outputs
back in place; only inside a block are the arrays rearranged to the chunk layout [B, H, S, C, D]
that the chunk equations use. On CPU this keeps the time per token flat in T: rearranging
whole-sequence arrays (and keeping whole-sequence intermediates) made it grow 1.5-3x from
T = 1K to 16K once they outgrew the cache.

Padding is always zeros: zero k, v (and beta) add nothing to a state, and the decayed form masks
the decay on padded steps (see `linear_attention_chunk`).
"""
import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

BLOCK_TOKENS = 512        # tokens per scan step (capped at the padded sequence length)


@dataclasses.dataclass(frozen=True)
class Blocks:
  """The block grid of a sequence of `seq_len` tokens in chunks of `chunk_size`."""
  seq_len: int
  chunk_size: int

  @property
  def num_chunks(self) -> int:
    return -(-self.seq_len // self.chunk_size)

  @property
  def chunks_per_block(self) -> int:
    return max(1, min(self.num_chunks, BLOCK_TOKENS // self.chunk_size))

  @property
  def num_blocks(self) -> int:
    return -(-self.num_chunks // self.chunks_per_block)

  @property
  def block_len(self) -> int:
    return self.chunks_per_block * self.chunk_size

  @property
  def padded_len(self) -> int:
    return self.num_blocks * self.block_len

  def pad(self, x: jax.Array) -> jax.Array:
    """[B, T, ...] -> [B, T_pad, ...] with zeros (no copy when T = T_pad)."""
    extra = self.padded_len - x.shape[1]
    return x if extra == 0 else jnp.pad(x, [(0, 0), (0, extra)] + [(0, 0)] * (x.ndim - 2))

  def lengths(self) -> jax.Array:
    """Real tokens per chunk, n_i = clip(T - i C, 0, C), as int32 [NB, S]."""
    starts = jnp.arange(self.num_blocks * self.chunks_per_block, dtype=jnp.int32) * self.chunk_size
    n = jnp.clip(self.seq_len - starts, 0, self.chunk_size)
    return n.reshape(self.num_blocks, self.chunks_per_block)


def to_chunks(x: jax.Array, chunk_size: int) -> jax.Array:
  """A block [B, L, H, D] (or [B, L, H]) -> [B, H, S, C, D] (or [B, H, S, C, 1])."""
  if x.ndim == 3:
    x = x[..., None]
  b, l, h, d = x.shape
  return x.reshape(b, l // chunk_size, chunk_size, h, d).transpose(0, 3, 1, 2, 4)


def from_chunks(x: jax.Array, squeeze: bool = False) -> jax.Array:
  """[B, H, S, C, D] -> a block [B, L, H, D] (or [B, L, H] with squeeze)."""
  b, h, s, c, d = x.shape
  x = x.transpose(0, 2, 3, 1, 4).reshape(b, s * c, h, d)
  return x[..., 0] if squeeze else x


def scan_blocks(body, init, grid: Blocks, sliced, stacked=(), outputs=(), reverse: bool = False):
  """Scans `body` over the blocks of `grid`, last to first with `reverse`.

  body(carry, i, sliced_blocks, stacked_blocks) -> (carry, output_blocks, ys), where
  sliced_blocks are the i-th [B, L, ...] blocks of the [B, T_pad, ...] arrays `sliced`,
  stacked_blocks the i-th entries of the [NB, ...] arrays `stacked`, output_blocks are written
  in place into the [B, T_pad, ...] arrays `outputs`, and ys are stacked into [NB, ...].
  Returns (carry, outputs, ys).
  """
  length = grid.block_len

  def step(state, xs):
    carry, outs = state
    i, blocks_of_stacked = xs[0], xs[1:]
    blocks = [lax.dynamic_slice_in_dim(x, i * length, length, axis=1) for x in sliced]
    carry, out_blocks, ys = body(carry, i, blocks, blocks_of_stacked)
    outs = tuple(lax.dynamic_update_slice_in_dim(o, b.astype(o.dtype), i * length, axis=1)
                 for o, b in zip(outs, out_blocks))
    return (carry, outs), ys

  xs = (jnp.arange(grid.num_blocks, dtype=jnp.int32), *stacked)
  (carry, outs), ys = lax.scan(step, (init, tuple(outputs)), xs, reverse=reverse)
  return carry, outs, ys
