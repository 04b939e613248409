"""One OpenBLAS thread when JAX trains on the CPU.

jaxlib runs its CPU LAPACK kernels (Cholesky and triangular solves for TrAct, QR and eigh for
LANTON's Lanczos noise estimate) on scipy's OpenBLAS. After such a call OpenBLAS's worker threads
keep the cores busy, and every XLA op that follows competes with them for the cores, including
steps without any LAPACK call. Measured with scripts/bench_optim.py on a 2-core CPU (jax 0.10.2,
MLP 784-512x3, batch 128): the plain AdamW step ran at 8.5-9.0 ms in a process that had made
TrAct's LAPACK calls, and at 4.8-5.0 ms once OpenBLAS was limited to one thread (the same as in a
process that never called LAPACK). paperlab's own host-side numpy work is small, so one thread
costs nothing there.

`limit_blas_threads()` loads the LAPACK that jaxlib uses (threadpoolctl can only limit a library
that is loaded) and limits every loaded BLAS to one thread. It does nothing when the default JAX
backend is not the CPU, or when the user set OPENBLAS_NUM_THREADS (an explicit choice wins).
"""
import os

import jax


def limit_blas_threads() -> bool:
  """Limits OpenBLAS to one thread when JAX runs on the CPU; returns whether it did."""
  if jax.default_backend() != "cpu" or "OPENBLAS_NUM_THREADS" in os.environ:
    return False
  import scipy.linalg.cython_lapack  # pylint: disable=import-outside-toplevel,unused-import
  import threadpoolctl  # pylint: disable=import-outside-toplevel
  threadpoolctl.threadpool_limits(limits=1, user_api="blas")
  return True
