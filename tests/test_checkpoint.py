"""Checkpointer: round trip, max_to_keep, and fallback from a corrupt latest checkpoint."""
import pathlib

import chex
import jax
import jax.numpy as jnp
import optax

from paperlab.checkpoint import Checkpointer
from paperlab.state import TrainState


def make_state(value: float, step: int) -> TrainState:
  params = {"dense": {"kernel": jnp.full((3, 4), value), "bias": jnp.zeros(4)}}
  return TrainState(params=params, opt_state=optax.adam(1e-3).init(params), model_state={},
                    step=jnp.asarray(step, jnp.int32), rng=jax.random.key(7))


def test_round_trip_keeps_structure_and_values(tmp_path):
  ckpt = Checkpointer(tmp_path, max_to_keep=2)
  saved = make_state(1.5, 10)
  ckpt.save(10, saved)
  ckpt.close()
  step, restored = Checkpointer(tmp_path, max_to_keep=2).restore_latest(make_state(0.0, 0))
  assert step == 10
  assert isinstance(restored, TrainState)
  assert type(restored.opt_state[0]).__name__ == "ScaleByAdamState"  # optax namedtuples survive
  chex.assert_trees_all_equal(jax.random.key_data(restored.rng), jax.random.key_data(saved.rng))
  chex.assert_trees_all_equal(restored.params, saved.params)
  assert int(restored.step) == 10


def test_max_to_keep_and_no_checkpoint(tmp_path):
  assert Checkpointer(tmp_path / "empty", max_to_keep=2).restore_latest(make_state(0, 0)) is None
  ckpt = Checkpointer(tmp_path / "c", max_to_keep=2)
  for step in (1, 2, 3):
    ckpt.save(step, make_state(float(step), step))
  ckpt.close()
  assert Checkpointer(tmp_path / "c", max_to_keep=2).steps() == [2, 3]


def _corrupt(step_dir: pathlib.Path) -> None:
  files = [p for p in step_dir.rglob("*") if p.is_file()]
  assert files
  for p in files:  # truncate every array/metadata file: the checkpoint can no longer be read
    p.write_bytes(b"\x00garbage")


def test_corrupt_latest_falls_back_to_previous(tmp_path, capsys):
  ckpt = Checkpointer(tmp_path, max_to_keep=3)
  ckpt.save(1, make_state(1.0, 1))
  ckpt.save(2, make_state(2.0, 2))
  ckpt.close()
  _corrupt(tmp_path / "2")
  step, restored = Checkpointer(tmp_path, max_to_keep=3).restore_latest(make_state(0.0, 0))
  assert step == 1
  assert float(restored.params["dense"]["kernel"][0, 0]) == 1.0
  assert "falling back" in capsys.readouterr().out


def test_half_written_checkpoint_is_ignored(tmp_path):
  """A save killed before it finished leaves a temporary directory that restore never picks."""
  ckpt = Checkpointer(tmp_path, max_to_keep=3)
  ckpt.save(1, make_state(1.0, 1))
  ckpt.close()
  # What Orbax leaves behind when the process dies mid-save: an uncommitted tmp dir for step 2.
  tmp_dir = tmp_path / "2.orbax-checkpoint-tmp-1234"
  tmp_dir.mkdir()
  (tmp_dir / "partial").write_bytes(b"\x00")
  step, _ = Checkpointer(tmp_path, max_to_keep=3).restore_latest(make_state(0.0, 0))
  assert step == 1
