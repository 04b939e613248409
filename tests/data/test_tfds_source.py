"""Tests for paperlab/data/tfds_source.py, with no TensorFlow and no network.

Two offline paths: `tfds.testing.mock_data` (MockPolicy.USE_CODE) for mnist, and a tiny dataset
that this file defines and prepares in ArrayRecord format in a temp dir (possible without TF for
Tensor features), which exercises the real reading path.
"""
import json
import shutil
import socket
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

import paperlab.data as data
from paperlab.errors import ConfigError


class PaperlabTinyImages(tfds.core.GeneratorBasedBuilder):
  """10 train images filled with their index i (label i % 3), 5 test images filled with 100 + i."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(4, 4, 1), dtype=np.uint8),
        "label": tfds.features.ClassLabel(num_classes=3)}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(10, 0), "test": self._generate_examples(5, 100)}

  def _generate_examples(self, num, offset):
    for i in range(num):
      yield i, {"image": np.full((4, 4, 1), offset + i, np.uint8), "label": i % 3}


TINY = "tfds:paperlab_tiny_images"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("tfds")
  PaperlabTinyImages(data_dir=str(root), file_format="array_record").download_and_prepare()
  return str(root)


def tiny_config(data_dir, **overrides):
  cfg = data.default_config(TINY)
  cfg.data_dir = data_dir
  cfg.update(overrides)
  return cfg


def image_ids(batch):
  """The index each tiny image was filled with (x is scaled to [0, 1])."""
  return np.rint(batch["x"][:, 0, 0, 0] * 255).astype(int)


@pytest.fixture
def no_network(monkeypatch):
  """Makes every connection attempt fail at once, and records it."""
  attempts = []

  def refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError("network disabled by the test")

  monkeypatch.setattr(socket, "getaddrinfo", refuse)
  monkeypatch.setattr(socket, "create_connection", refuse)
  monkeypatch.setattr(socket.socket, "connect", refuse)
  return attempts


def test_mock_mnist_batches(no_network):
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    source = data.build(data.default_config("tfds:mnist"), batch_size=8)
    other_seed = data.build({"name": "tfds:mnist", "seed": 1}, batch_size=8)
    assert (source.task, source.input_shape, source.output_dim) == ("classification",
                                                                     (28, 28, 1), 10)
    assert not source.on_device and source.device_data is None and source.vocab_size is None
    assert source.describe() == "tfds:mnist: 20 train / 20 test, 28x28x1, 10 classes"
    batch = source.host_batch(3)
    assert batch["x"].shape == (8, 28, 28, 1) and batch["x"].dtype == np.float32
    assert 0.0 <= batch["x"].min() and batch["x"].max() <= 1.0 and batch["x"].max() > 0.5
    assert batch["y"].dtype == np.int32 and batch["y"].shape == (8,) and batch["y"].max() < 10
    np.testing.assert_array_equal(batch["mask"], np.ones(8, np.float32))
    # A rebuilt source (a resumed run) reads the same batch; the prefetching iterator agrees.
    again = data.build(data.default_config("tfds:mnist"), batch_size=8).host_batch(3)
    np.testing.assert_array_equal(again["x"], batch["x"])
    stream = source.host_batches(2)
    np.testing.assert_array_equal(next(stream)["x"], source.host_batch(2)["x"])
    np.testing.assert_array_equal(next(stream)["x"], batch["x"])
    assert not np.array_equal(other_seed.host_batch(3)["x"], batch["x"])
    evals = list(source.eval_batches(8))
    assert [e["mask"].sum() for e in evals] == [8, 8, 4] and evals[-1]["x"].shape == (8, 28, 28, 1)
    with pytest.raises(NotImplementedError, match="host_batch"):
      source.sample(None, 0)
  assert not no_network


def test_real_arrayrecord_read_covers_each_epoch_once(tiny_dir, no_network):
  source = data.build(tiny_config(tiny_dir), batch_size=4)
  assert source.input_shape == (4, 4, 1) and source.output_dim == 3
  batches = [source.host_batch(s) for s in range(5)]  # 20 positions = 2 epochs of 10
  ids = np.concatenate([image_ids(b) for b in batches])
  labels = np.concatenate([b["y"] for b in batches])
  np.testing.assert_array_equal(np.sort(ids[:10]), np.arange(10))
  np.testing.assert_array_equal(np.sort(ids[10:]), np.arange(10))
  assert not np.array_equal(ids[:10], ids[10:])
  np.testing.assert_array_equal(labels, ids % 3)
  again = data.build(tiny_config(tiny_dir), batch_size=4)
  np.testing.assert_array_equal(image_ids(again.host_batch(4)), ids[16:])
  # Eval: the whole test split once, in its stored order, the last batch padded.
  evals = list(source.eval_batches(4))
  assert len(evals) == 2
  np.testing.assert_array_equal(evals[1]["mask"], [1, 0, 0, 0])
  eval_ids = np.concatenate([image_ids(e) for e in evals])[:5]
  stored = tfds.data_source("paperlab_tiny_images", split="test", data_dir=tiny_dir,
                            download=False)
  np.testing.assert_array_equal(eval_ids, [int(stored[i]["image"][0, 0, 0]) for i in range(5)])
  np.testing.assert_array_equal(np.sort(eval_ids), np.arange(100, 105))
  assert not no_network


def test_missing_data_is_one_clear_error_without_network(tmp_path, no_network):
  cfg = data.default_config("tfds:mnist")
  cfg.data_dir = str(tmp_path)
  start = time.monotonic()
  with pytest.raises(ConfigError) as info:
    data.build(cfg, batch_size=8)
  assert time.monotonic() - start < 10
  message = str(info.value)
  assert "\n" not in message
  for part in ("'mnist' was not found under " + str(tmp_path), "download is False",
               "tfds build mnist --data_dir DIR --file_format=array_record",
               "config.data.data_dir", "TFDS_DATA_DIR"):
    assert part in message
  assert not no_network
  assert not list(tmp_path.iterdir())  # nothing was written into the data dir


def test_tfrecord_data_ask_for_arrayrecord(tiny_dir, tmp_path):
  copy = tmp_path / "tfds"
  shutil.copytree(tiny_dir, copy)
  info_file = copy / "paperlab_tiny_images" / "1.0.0" / "dataset_info.json"
  info = json.loads(info_file.read_text())
  info["fileFormat"] = "tfrecord"
  info_file.write_text(json.dumps(info))
  with pytest.raises(ConfigError, match="stored as tfrecord.*--file_format=array_record"):
    data.build(tiny_config(str(copy)), batch_size=4)


@pytest.mark.parametrize("overrides,match", [
    ({"eval_split": "validation"}, "has no split 'validation'; valid: train, test"),
    ({"image_key": "img"}, "image_key='img' is not a feature .* features: image, label"),
    ({"label_key": "image"}, "is not a ClassLabel feature"),
])
def test_bad_fields(tiny_dir, overrides, match):
  with pytest.raises(ConfigError, match=match):
    data.build(tiny_config(tiny_dir, **overrides), batch_size=4)


def test_unknown_dataset_name():
  with pytest.raises(ConfigError, match="TFDS has no dataset named 'no_such_dataset_xyz'"):
    data.build({"name": "tfds:no_such_dataset_xyz"}, batch_size=4)


def test_download_flag_is_passed_through(monkeypatch):
  calls = []

  def fake_data_source(name, **kwargs):
    calls.append((name, kwargs))
    raise RuntimeError("stop here")

  monkeypatch.setattr(tfds, "data_source", fake_data_source)
  for download in (False, True):
    with pytest.raises(ConfigError):  # the failure is diagnosed: not prepared
      data.build({"name": "tfds:paperlab_tiny_images", "download": download}, batch_size=4)
  assert [kwargs["download"] for _, kwargs in calls] == [False, True]
  with pytest.raises(ConfigError, match=r"downloading it failed \(RuntimeError: stop here\)"):
    data.build({"name": "tfds:paperlab_tiny_images", "download": True}, batch_size=4)
  assert calls[0] == ("paperlab_tiny_images", {"split": "train", "data_dir": None,
                                               "download": False})
