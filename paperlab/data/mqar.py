"""`mqar`: multi-query associative recall, generated on device from (seed, step).

The synthetic task of Arora, Eyuboglu et al., "Zoology: Measuring and Improving Recall in
Efficient Language Models" (2023), laid out as in Zoology's `zoology/data/multiquery_ar.py`
(HazyResearch/zoology). With V = vocab_size, L = seq_len, n = num_kv_pairs:

  keys   : n distinct tokens from {1, ..., V//2 - 1}   (token 0 marks "empty" before the noise fill)
  values : n distinct tokens from {V//2, ..., V - 1}
  context: positions 0 .. 2n-1 hold  k_1 v_1 k_2 v_2 ... k_n v_n
  queries: the L - 2n remaining positions are split into (L - 2n) // 2 slots, slot g at position
           2n + 2g. n distinct slots are drawn without replacement with probability
           p(g) ∝ a * (g + 1)^(a - 1)   (a = power_a; a = 1 is uniform, a = 0.01 as in Zoology
           puts queries close after the context), and key k_j is placed in the j-th drawn slot.
  target : at the position of query k_j the model must output v_j; mask is 1 there, 0 elsewhere.
  noise  : with random_non_queries (Zoology's default), every other position holds a uniform
           random token from {0, ..., V - 1}.

Example (V=12, n=2, L=16, random_non_queries=False), as in Zoology's docstring:
  x: 2 8 4 7 0 0 4 0 0 0 0 0 2 0 0 0      y at position 6 is 7, at position 12 is 8; mask 1 there.

Zoology shifts labels by one position because its labels are next-token targets; here the
target sits at the query token's own position: the same pairing ("after key k_j, emit v_j").
Zoology draws the slots with numpy's sequential sampling without replacement; we use the
equivalent Gumbel-top-k trick so that it runs inside jit. Training batch i uses
fold_in(stream_key(seed, TRAIN), i); the held-out set is num_eval sequences from stream EVAL.
"""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from paperlab.data import config as config_lib
from paperlab.data import sampling
from paperlab.data.source import Source, padded_batches


def default_config(name: str = "mqar") -> ml_collections.ConfigDict:
  return config_lib.base_config(name, vocab_size=8192, seq_len=64, num_kv_pairs=8, power_a=0.01,
                                random_non_queries=True, num_eval=1000)


def gumbel_top_k(logits: jax.Array, uniforms: jax.Array, k: int) -> jax.Array:
  """k distinct indices per row of `logits` [..., m], drawn one after another with probability
  softmax(logits) among those not yet drawn (the Gumbel-top-k trick, Kool et al. 2019).
  `uniforms` are iid U(0, 1) of the same shape, the source of randomness."""
  gumbel = -jnp.log(-jnp.log(uniforms))
  return jax.lax.top_k(logits + gumbel, k)[1]


def generate(key: jax.Array, num_sequences: int, vocab_size: int, seq_len: int,
             num_kv_pairs: int, power_a: float,
             random_non_queries: bool) -> dict[str, jax.Array]:
  """`num_sequences` MQAR sequences: {'x': int32 [S, L], 'y': int32 [S, L], 'mask': f32 [S, L]}."""
  n, half = num_kv_pairs, vocab_size // 2
  context_len = 2 * n
  num_slots = (seq_len - context_len) // 2
  # One draw of random bits for everything (a single threefry call compiles ~3x faster than one
  # per quantity), cut into: key choice, value choice, slot choice, noise tokens.
  sizes = (half - 1, vocab_size - half, num_slots, seq_len)
  bits = jax.random.bits(key, (num_sequences, sum(sizes)), jnp.uint32)
  key_bits, value_bits, slot_bits, noise_bits = jnp.split(bits, np.cumsum(sizes)[:-1], axis=1)
  keys = gumbel_top_k(0.0, _open_unit(key_bits), n) + 1
  values = gumbel_top_k(0.0, _open_unit(value_bits), n) + half
  context = jnp.stack([keys, values], axis=-1).reshape(num_sequences, context_len)
  slot_logits = (power_a - 1.0) * jnp.log(jnp.arange(1, num_slots + 1, dtype=jnp.float32))
  slots = gumbel_top_k(slot_logits, _open_unit(slot_bits), n)
  positions = context_len + 2 * slots  # [S, n]
  rows = jnp.arange(num_sequences)[:, None]
  tail = jnp.zeros((num_sequences, seq_len - context_len), jnp.int32)
  x = jnp.concatenate([context, tail], axis=1).at[rows, positions].set(keys)
  y = jnp.zeros((num_sequences, seq_len), jnp.int32).at[rows, positions].set(values)
  mask = jnp.zeros((num_sequences, seq_len), jnp.float32).at[rows, positions].set(1.0)
  if random_non_queries:
    # Uniform tokens; the modulo bias is below vocab_size / 2**32.
    noise = (noise_bits % jnp.uint32(vocab_size)).astype(jnp.int32)
    x = jnp.where(x == 0, noise, x)
  return {"x": x.astype(jnp.int32), "y": y, "mask": mask}


def _open_unit(bits: jax.Array) -> jax.Array:
  """uint32 bits -> float32 uniforms in the open interval (0, 1) (24 bits of resolution)."""
  return ((bits >> 8).astype(jnp.float32) + 0.5) * (1.0 / 2**24)


# Shared by all sources, so equal configs compile the held-out set once per process.
_generate_jit = jax.jit(generate, static_argnums=(1, 2, 3, 4, 5, 6))


class MQARSource(Source):
  """Fresh MQAR sequences every step, generated inside the jitted train step."""

  task = "sequence"
  input_dtype = jnp.int32
  on_device = True
  device_data = None

  def __init__(self, config: ml_collections.ConfigDict, batch_size: int):
    n, vocab, seq_len = config.num_kv_pairs, config.vocab_size, config.seq_len
    config_lib.require(n >= 1, f"config.data.num_kv_pairs must be >= 1, got {n}")
    config_lib.require(vocab >= 2 * n + 2,
                       f"config.data.vocab_size={vocab} is too small for {n} distinct keys and "
                       f"values: need vocab_size >= 2 * num_kv_pairs + 2 = {2 * n + 2}")
    config_lib.require(seq_len >= 4 * n,
                       f"config.data.seq_len={seq_len} leaves no room for {n} queries after the "
                       f"{2 * n} context tokens: need seq_len >= 4 * num_kv_pairs = {4 * n}")
    config_lib.require(0 < config.power_a <= 1,
                       f"config.data.power_a must be in (0, 1], got {config.power_a}")
    config_lib.require(config.num_eval >= 1,
                       f"config.data.num_eval must be >= 1, got {config.num_eval}")
    super().__init__(config, batch_size)
    self.vocab_size = self.output_dim = vocab
    self.seq_len, self.num_kv_pairs = seq_len, n
    self.power_a, self.random_non_queries = config.power_a, config.random_non_queries
    self.num_eval = config.num_eval
    self.input_shape = (seq_len,)

  def _generate(self, key, num_sequences):
    return generate(key, num_sequences, self.vocab_size, self.seq_len, self.num_kv_pairs,
                    self.power_a, self.random_non_queries)

  def sample(self, device_data, step):
    del device_data  # a pure generator
    key = jax.random.fold_in(sampling.stream_key(self.seed, sampling.TRAIN), step)
    return self._generate(key, self.batch_size)

  @functools.cached_property
  def _eval_set(self) -> dict[str, np.ndarray]:
    data = _generate_jit(sampling.stream_key(self.seed, sampling.EVAL), self.num_eval,
                         self.vocab_size, self.seq_len, self.num_kv_pairs, self.power_a,
                         self.random_non_queries)
    return {k: np.asarray(v) for k, v in data.items()}

  def eval_batches(self, batch_size, step=0):
    del step  # the held-out set is fixed
    return padded_batches(self._eval_set, batch_size)

  def describe(self):
    return (f"{self.name}: vocab {self.vocab_size}, seq_len {self.seq_len}, "
            f"{self.num_kv_pairs} key-value pairs, {self.num_eval} held-out sequences")


def build(config: ml_collections.ConfigDict, batch_size: int) -> MQARSource:
  return MQARSource(config, batch_size)
