"""paperlab.sweep: hyperparameter sweeps from a laptop to a cluster, and many trials in one program.

A config file defines `get_sweep(arg=None) -> list[dict]` of dotted overrides, built with:

  from paperlab import sweep
  def get_sweep(arg=None):
    return sweep.product(sweep.axis("optim.lr", [1e-3, 3e-3, 1e-2]), sweep.axis("seed", range(3)))

and `python -m paperlab.sweep --config configs/x.py --workdir runs/x [--vectorize]` runs it.

Files: algebra.py (axis, product, zip, chain, fixed), search.py (random search: uniform, loguniform,
choice; Halton or plain), trials.py (trial directories, sweep.json), launch.py (local, slurm,
print), results.py (results.csv, table, sweep.png), vectorize.py (--vectorize), cli.py.
"""

from paperlab.sweep.algebra import CONFIG_ARG_KEY, axis, chain, fixed, merge, product, zip  # pylint: disable=redefined-builtin
from paperlab.sweep.search import choice, halton, loguniform, random_search, uniform

__all__ = ["CONFIG_ARG_KEY", "axis", "chain", "choice", "fixed", "halton", "loguniform", "merge", "product",
           "random_search", "uniform", "zip"]
