"""The sweep algebra (product, zip, chain, fixed, axis) and the random search (Halton and plain)."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab import sweep
from paperlab.errors import ConfigError


def test_product_is_nested_loops_with_first_axis_slowest():
  trials = sweep.product(sweep.axis("optim.lr", [1, 2, 3]), sweep.axis("seed", [0, 1]))
  expected = [{"optim.lr": lr, "seed": s} for lr in (1, 2, 3) for s in (0, 1)]
  assert trials == expected


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_product_size_and_coverage(sizes):
  axes = [sweep.axis(f"k{i}", range(n)) for i, n in enumerate(sizes)]
  trials = sweep.product(*axes)
  assert len(trials) == math.prod(sizes)
  got = {tuple(t[f"k{i}"] for i in range(len(sizes))) for t in trials}
  assert got == set(itertools.product(*(range(n) for n in sizes)))


def test_zip_pairs_pointwise_and_checks_lengths():
  trials = sweep.zip(sweep.axis("optim.lr", [0.1, 0.2]), sweep.axis("optim.warmup_steps", [10, 20]))
  assert trials == [{"optim.lr": 0.1, "optim.warmup_steps": 10}, {"optim.lr": 0.2, "optim.warmup_steps": 20}]
  with pytest.raises(ConfigError, match=r"equal length, got lengths \[2, 3\]"):
    sweep.zip(sweep.axis("a", [1, 2]), sweep.axis("b", [1, 2, 3]))


def test_chain_concatenates_and_fixed_sets_every_trial():
  sgd = sweep.product(sweep.fixed({"optim.name": "sgd"}), sweep.axis("optim.lr", [0.1, 1.0]))
  adam = sweep.product(sweep.fixed({"optim.name": "adamw"}), sweep.axis("optim.lr", [1e-3]))
  trials = sweep.chain(sgd, adam)
  assert trials == [{"optim.name": "sgd", "optim.lr": 0.1}, {"optim.name": "sgd", "optim.lr": 1.0},
                    {"optim.name": "adamw", "optim.lr": 1e-3}]
  assert sweep.fixed(seed=3) == [{"seed": 3}]


def test_algebra_laws():
  a, b, c = sweep.axis("a", [1, 2]), sweep.axis("b", [3, 4, 5]), sweep.axis("c", [6])
  assert sweep.product(a, sweep.product(b, c)) == sweep.product(sweep.product(a, b), c)  # associative
  assert sweep.product(a, sweep.fixed()) == a  # fixed() is the unit
  assert sweep.chain(a, sweep.chain(b, c)) == sweep.chain(sweep.chain(a, b), c)
  assert sweep.zip(a, sweep.axis("d", [7, 8])) == sweep.zip(sweep.axis("d", [7, 8]), a)  # as sets of keys


def test_conflicting_keys_and_bad_input_raise_one_line():
  with pytest.raises(ConfigError, match="sets 'seed' twice"):
    sweep.product(sweep.axis("seed", [0, 1]), sweep.fixed(seed=2))
  assert sweep.product(sweep.axis("seed", [0]), sweep.fixed(seed=0)) == [{"seed": 0}]  # same value is fine
  with pytest.raises(ConfigError, match="no values"):
    sweep.axis("optim.lr", [])
  with pytest.raises(ConfigError, match="list of trial dicts"):
    sweep.product({"optim.lr": [1, 2]})


def test_halton_matches_radical_inverse_by_hand():
  # Base 2: 1/2, 1/4, 3/4, 1/8; base 3: 1/3, 2/3, 1/9, 4/9 (Halton 1960).
  points = sweep.halton(4, 2, seed=None)
  np.testing.assert_allclose(points, [[1 / 2, 1 / 3], [1 / 4, 2 / 3], [3 / 4, 1 / 9], [1 / 8, 4 / 9]])


def test_halton_rotation_keeps_spacing_and_is_seeded():
  plain = sweep.halton(64, 2, seed=None)
  rotated = sweep.halton(64, 2, seed=5)
  shift = np.mod(rotated - plain, 1.0)
  np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-12)  # one shift for all
  np.testing.assert_array_equal(rotated, sweep.halton(64, 2, seed=5))
  assert not np.allclose(rotated, sweep.halton(64, 2, seed=6))
  # Low discrepancy: each of the 8 strata of [0,1) in the first coordinate holds exactly 64 / 8 points.
  np.testing.assert_array_equal(np.bincount((rotated[:, 0] * 8).astype(int), minlength=8), [8] * 8)


@pytest.mark.parametrize("method", ["halton", "random"])
def test_random_search_respects_ranges_and_log_scale(method):
  space = {"optim.lr": sweep.loguniform(1e-4, 1e-1), "optim.weight_decay": sweep.uniform(0.0, 0.5),
           "optim.name": sweep.choice(["sgd", "adamw"])}
  trials = sweep.random_search(space, 64, seed=0, method=method)
  assert len(trials) == 64 and all(set(t) == set(space) for t in trials)
  lrs = np.array([t["optim.lr"] for t in trials])
  assert ((1e-4 <= lrs) & (lrs <= 1e-1)).all()
  # Log-uniform: about a third of the points in each decade.
  decades = np.bincount(np.floor(np.log10(lrs) + 4).astype(int), minlength=3)
  assert (decades >= 12).all(), decades
  wds = np.array([t["optim.weight_decay"] for t in trials])
  assert ((0 <= wds) & (wds <= 0.5)).all() and abs(wds.mean() - 0.25) < 0.07
  assert {t["optim.name"] for t in trials} == {"sgd", "adamw"}
  assert trials == sweep.random_search(space, 64, seed=0, method=method)
  assert trials != sweep.random_search(space, 64, seed=1, method=method)


def test_random_search_composes_with_seeds():
  trials = sweep.product(sweep.random_search({"optim.lr": sweep.loguniform(1e-3, 1e-1)}, 4, seed=0),
                         sweep.axis("seed", [0, 1]))
  assert len(trials) == 8 and trials[0]["optim.lr"] == trials[1]["optim.lr"] and trials[0]["seed"] == 0


def test_random_search_bad_input():
  with pytest.raises(ConfigError, match="0 < low < high"):
    sweep.loguniform(0.0, 1.0)
  with pytest.raises(ConfigError, match="valid: halton, random"):
    sweep.random_search({"optim.lr": sweep.uniform(0, 1)}, 4, method="sobol")
  with pytest.raises(ConfigError, match="expected uniform"):
    sweep.random_search({"optim.lr": [1, 2]}, 4)
