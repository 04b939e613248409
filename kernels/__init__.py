"""paperlab.kernels: chunked linear-attention and delta-rule scans (Pallas, XLA and reference paths).

Public API (layout [B, T, H, D]; each returns (o, final_state or None)):
  linear_attention(q, k, v, *, g=None, scale=None, initial_state=None, output_final_state=False,
                   chunk_size=64, impl="auto")
  delta_rule(q, k, v, beta, *, scale=None, initial_state=None, output_final_state=False,
             chunk_size=64, impl="auto")
Helpers: tril_inverse ((I + L)^-1 for the WY transform), alibi_slopes / alibi_log_decay (per-head
decay rates). Each implementation also has its own module: <op>_reference (lax.scan ground
truth), <op>_xla (chunked jnp), <op>_pallas (+ _gpu / _tpu layouts), <op>_chunk (the equations
of one chunk, forward and backward, shared by the XLA path and both Pallas layouts).
BENCHMARKS.md has the measured speeds and the test tolerances.
"""
from paperlab.kernels.api import (CHUNK_SIZES, CPU_AUTO, CPU_FEW_SEQUENCES, IMPLS, cpu_auto_impls,
                                  delta_rule, linear_attention)
from paperlab.kernels.decay import alibi_log_decay, alibi_slopes
from paperlab.kernels.tril_inverse import INVERSE_METHODS, tril_inverse

__all__ = ["CHUNK_SIZES", "CPU_AUTO", "CPU_FEW_SEQUENCES", "IMPLS", "INVERSE_METHODS",
           "alibi_log_decay", "alibi_slopes", "cpu_auto_impls", "delta_rule", "linear_attention",
           "tril_inverse"]
