"""Moving between the public [B, T, H, D] layout and zero-padded chunks [B, H, NT, C, D].

Padding is at the end of the sequence and is always zeros: zero k, v (and beta) add nothing to a
state, and the decayed form masks the decay on padded steps (see `linear_attention_chunk`).
"""
import jax
import jax.numpy as jnp


def num_chunks(seq_len: int, chunk_size: int) -> int:
  return -(-seq_len // chunk_size)


def to_chunks(x: jax.Array, chunk_size: int) -> jax.Array:
  """[B, T, H, D] (or [B, T, H]) -> [B, H, NT, C, D] (or [B, H, NT, C, 1]), zero-padded."""
  if x.ndim == 3:
    x = x[..., None]
  b, t, h, d = x.shape
  nt = num_chunks(t, chunk_size)
  x = jnp.pad(x, ((0, 0), (0, nt * chunk_size - t), (0, 0), (0, 0)))
  return x.reshape(b, nt, chunk_size, h, d).transpose(0, 3, 1, 2, 4)


def from_chunks(x: jax.Array, seq_len: int) -> jax.Array:
  """[B, H, NT, C, D] -> [B, T, H, D], dropping the padding."""
  b, h, nt, c, d = x.shape
  return x.transpose(0, 2, 3, 1, 4).reshape(b, nt * c, h, d)[:, :seq_len]


def chunk_lengths(seq_len: int, chunk_size: int) -> jax.Array:
  """Real tokens per chunk, n_i = min(C, T - i C), as an int32 [NT] array."""
  starts = jnp.arange(num_chunks(seq_len, chunk_size), dtype=jnp.int32) * chunk_size
  return jnp.minimum(chunk_size, seq_len - starts)


def to_blocks(x: jax.Array, block_chunks: int) -> jax.Array:
  """[B, H, NT, ...] -> [NB, B, H, S, ...]: groups of S = block_chunks chunks, zero-padded.

  The XLA paths scan over these blocks so that the arrays of one step stay in cache: on CPU the
  time per token otherwise grows with T once the whole-sequence intermediates outgrow it.
  """
  nt = x.shape[2]
  nb = -(-nt // block_chunks)
  pad = [(0, 0)] * x.ndim
  pad[2] = (0, nb * block_chunks - nt)
  x = jnp.pad(x, pad)
  return jnp.moveaxis(x.reshape(x.shape[:2] + (nb, block_chunks) + x.shape[3:]), 2, 0)


def from_blocks(x: jax.Array, num_chunks_: int) -> jax.Array:
  """[NB, B, H, S, ...] -> [B, H, NT, ...], dropping the padding chunks."""
  x = jnp.moveaxis(x, 0, 2)
  return x.reshape(x.shape[:2] + (-1,) + x.shape[4:])[:, :, :num_chunks_]
