"""Tests for paperlab/data/registry.py and config.py: names, defaults, and one-line config errors.

Also checks the Source contract that the trainer relies on, for every on-device source.
"""
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import paperlab.data as data
from paperlab.data import source as source_lib
from paperlab.errors import ConfigError

ON_DEVICE = ["digits", "icl_regression", "mqar", "random_labels"]


def test_names_list_every_source_and_the_tfds_form():
  assert data.names() == ON_DEVICE + ["tfds:<name>"]


@pytest.mark.parametrize("name", ON_DEVICE + ["tfds:mnist"])
def test_default_config_has_name_seed_and_no_bare_none(name):
  cfg = data.default_config(name)
  assert cfg.name == name and cfg.seed == 0
  for field in cfg.keys():
    if cfg[field] is None:  # optional fields must be typed placeholders
      assert cfg.get_type(field) is not type(None), field


def test_unknown_name_lists_valid_names():
  with pytest.raises(ConfigError) as info:
    data.build(ml_collections.ConfigDict({"name": "digitz"}), batch_size=4)
  message = str(info.value)
  assert "digitz" in message and "tfds:<name>" in message
  assert all(name in message for name in ON_DEVICE)
  with pytest.raises(ConfigError, match="digitz"):
    data.default_config("digitz")


def test_empty_tfds_name_and_missing_name():
  with pytest.raises(ConfigError, match="needs a dataset name"):
    data.default_config("tfds:")
  with pytest.raises(ConfigError, match="config.data.name"):
    data.build(ml_collections.ConfigDict({"seed": 0}), batch_size=4)


def test_unknown_field_names_the_field_and_the_valid_fields():
  cfg = data.default_config("icl_regression").to_dict()
  cfg["num_pts"] = 3
  with pytest.raises(ConfigError) as info:
    data.build(cfg, batch_size=4)
  message = str(info.value)
  assert "config.data.num_pts" in message and "num_points" in message and "noise_std" in message
  assert "\n" not in message


@pytest.mark.parametrize("field,value,match", [
    ("dim", "8", "config.data.dim must be a int"),
    ("dim", True, "config.data.dim must be a int"),
    ("dim", 2.5, "config.data.dim must be a int"),
    ("dim", None, "config.data.dim must be a int, got None"),
    ("noise_std", "x", "config.data.noise_std must be a float"),
    ("dim", 0, "config.data.dim must be >= 1"),
    ("noise_std", -1.0, "noise_std must be >= 0"),
    ("seed", -1, "config.data.seed must be >= 0"),
])
def test_bad_values_are_one_line_config_errors(field, value, match):
  cfg = data.default_config("icl_regression").to_dict()
  cfg[field] = value
  with pytest.raises(ConfigError, match=match):
    data.build(cfg, batch_size=4)


def test_partial_config_keeps_defaults_and_int_is_accepted_for_float():
  source = data.build({"name": "icl_regression", "noise_std": 0, "num_eval": 3}, batch_size=2)
  assert source.dim == data.default_config("icl_regression").dim
  assert isinstance(source.noise_std, float) and source.noise_std == 0.0


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_bad_batch_size(batch_size):
  with pytest.raises(ConfigError, match="batch_size"):
    data.build(data.default_config("digits"), batch_size=batch_size)


def test_placeholder_field_can_be_overridden_and_left_unset():
  cfg = data.default_config("random_labels")
  assert cfg.num_examples is None
  cfg.num_examples = 30  # what --config.data.num_examples=30 does
  assert data.build(cfg, batch_size=4).num_examples == 30


@pytest.mark.parametrize("name", ON_DEVICE)
def test_source_contract(name, small_config):
  batch_size = 4
  source = data.build(small_config(name), batch_size=batch_size)
  assert isinstance(source, source_lib.Source)
  assert source.task in source_lib.TASKS and source.on_device
  assert source.batch_size == batch_size and name in source.describe()
  # host_batch runs `sample` under jit with device_data passed in and a traced int32 step, as the
  # trainer's step does.
  batch = source.host_batch(3)
  assert batch["x"].shape == (batch_size,) + tuple(source.input_shape)
  assert batch["x"].dtype == source.input_dtype
  assert batch["mask"].dtype == jnp.float32
  if source.task == "classification":
    assert batch["y"].shape == batch["mask"].shape == (batch_size,)
    assert batch["y"].dtype == jnp.int32
    assert int(batch["y"].max()) < source.output_dim and source.vocab_size is None
  elif source.task == "sequence":
    assert batch["y"].shape == batch["mask"].shape == (batch_size,) + tuple(source.input_shape)
    assert batch["y"].dtype == jnp.int32 and int(batch["y"].max()) < source.output_dim
    assert int(batch["x"].max()) < source.vocab_size
  else:
    assert batch["y"].shape == batch["mask"].shape == (batch_size, source.input_shape[0])
    assert batch["y"].dtype == jnp.float32 and source.output_dim == 1
  # A rebuilt source (a resumed run) gives the same batch; another step gives another batch.
  host = batch
  rebuilt = data.build(small_config(name), batch_size=batch_size)
  assert rebuilt == source and hash(rebuilt) == hash(source)
  again = rebuilt.host_batch(3)
  for key in ("x", "y", "mask"):
    assert isinstance(host[key], np.ndarray)
    np.testing.assert_array_equal(again[key], host[key])
  assert not np.array_equal(source.host_batch(4)["x"], host["x"])
  # Every eval batch has the same shape as a training batch of that size.
  evals = list(source.eval_batches(batch_size))
  assert evals
  for ev in evals:
    for key in ("x", "y", "mask"):
      assert ev[key].shape[1:] == host[key].shape[1:] and len(ev[key]) == batch_size
