"""paperlab/cpu.py: one OpenBLAS thread when JAX runs on the CPU."""
import os
import subprocess
import sys

PROBE = """
import os, sys, threadpoolctl
from paperlab import cpu
did = cpu.limit_blas_threads()
blas = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
print(did, blas, max(blas) if blas else None)
"""


def _probe(env_extra):
  env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
  env.update(env_extra)
  out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                       timeout=120, check=True)
  return out.stdout.split("\n")[-2]


def test_limits_every_loaded_blas_to_one_thread():
  # The two OpenBLAS builds (numpy's and scipy's, the one jaxlib's LAPACK runs on) are both at 1.
  line = _probe({})
  assert line.startswith("True [") and line.endswith(" 1"), line


def test_an_explicit_openblas_setting_wins():
  line = _probe({"OPENBLAS_NUM_THREADS": "2"})
  assert line.startswith("False"), line
