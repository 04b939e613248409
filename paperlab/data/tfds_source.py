"""`tfds:<name>`: an image-classification dataset from TensorFlow Datasets, read with grain, no TF.

`tfds.data_source(name, split, data_dir, download=False)` opens prepared ArrayRecord files for
random access without TensorFlow. grain's `MapDataset.range(N).shuffle(seed).repeat()` is an
endless index stream in which every epoch is a fresh permutation of the split (grain reseeds its
index shuffle per epoch); batch i reads the examples at stream positions [i*B, (i+1)*B) in one
batched read. Batch i is therefore a pure function of (seed, i), read by random access: resuming at
step i needs no iterator state. Batches may straddle epoch boundaries, as on device.
`host_batches(start)` yields the same batches, read ahead by grain threads.

Offline by default: `download=False` never touches the network (tested with sockets disabled).
When the data are missing this raises one `ConfigError` saying how to prepare them:
`tfds build <name> --data_dir DIR --file_format=array_record` on a machine with network and
TensorFlow, then copy DIR here and set `config.data.data_dir` (or TFDS_DATA_DIR). ArrayRecord is
required: TFDS's default TFRecord format has no random access. `download=True` is passed through
to TFDS (needs network; offline it retries for minutes before failing).

Images (uint8) are scaled to float32 in [0, 1]; labels must be a ClassLabel feature (int32 y).
Sizes come from the builder's features, so images must have a fixed shape (e.g. mnist, cifar10,
fashion_mnist); variable-size datasets need a resize step that this source does not have.
"""
import sys
from collections.abc import Iterator

import grain
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from paperlab.data import config as config_lib
from paperlab.data.source import Source, padded_batches
from paperlab.errors import ConfigError

PREFIX = "tfds:"


def default_config(name: str) -> ml_collections.ConfigDict:
  return config_lib.base_config(
      name, data_dir=config_lib.placeholder(str), download=False, train_split="train",
      eval_split="test", image_key="image", label_key="label")


def _data_dir_text(data_dir: str | None) -> str:
  if data_dir is not None:
    return data_dir
  return f"{tfds.core.constants.get_default_data_dir()} (the TFDS default)"


def _open(dataset: str, split: str, config: ml_collections.ConfigDict):
  """tfds.data_source(...) with every failure turned into one actionable ConfigError."""
  try:
    return tfds.data_source(dataset, split=split, data_dir=config.data_dir,
                            download=config.download)
  except tfds.core.registered.DatasetNotFoundError:
    raise ConfigError(f"TFDS has no dataset named {dataset!r} (data source 'tfds:{dataset}'); "
                      "tfds.list_builders() lists the valid names") from None
  except Exception as error:  # pylint: disable=broad-except
    raise _diagnose(dataset, split, config, error) from error


def _diagnose(dataset: str, split: str, config: ml_collections.ConfigDict,
              error: Exception) -> Exception:
  """Why did data_source fail? Missing data, wrong file format, or an unknown split."""
  where = _data_dir_text(config.data_dir)
  prepare = (f"prepare it on a machine with network and TensorFlow with `tfds build {dataset} "
             f"--data_dir DIR --file_format=array_record`, copy DIR here and set "
             f"config.data.data_dir (or TFDS_DATA_DIR) to it")
  try:
    builder = tfds.builder(dataset, data_dir=config.data_dir)
    prepared = builder.is_prepared()
  except Exception:  # pylint: disable=broad-except
    return error
  if not prepared and config.download:
    reason = (str(error).splitlines() or [""])[0][:200]
    return ConfigError(f"TFDS dataset {dataset!r} is not under {where} and downloading it failed "
                       f"({type(error).__name__}: {reason}); or {prepare}")
  if not prepared:
    return ConfigError(f"TFDS dataset {dataset!r} was not found under {where} and "
                       f"config.data.download is False: {prepare}")
  file_format = builder.info.file_format
  if file_format is not None and file_format.value != "array_record":
    return ConfigError(f"TFDS dataset {dataset!r} under {where} is stored as "
                       f"{file_format.value}, which has no random access; rebuild it as "
                       f"ArrayRecord "
                       f"(`tfds build {dataset} --data_dir DIR --file_format=array_record`)")
  splits = list(builder.info.splits)
  if splits and split.split("[")[0] not in splits:
    return ConfigError(f"TFDS dataset {dataset!r} has no split {split!r}; "
                       f"valid: {', '.join(splits)}")
  return error


class TfdsSource(Source):
  """A TFDS image-classification dataset read on the host, batch i = f(seed, i)."""

  task = "classification"
  input_dtype = jnp.float32
  vocab_size = None
  on_device = False
  device_data = None

  def __init__(self, config: ml_collections.ConfigDict, batch_size: int):
    super().__init__(config, batch_size)
    self.dataset = config.name[len(PREFIX):]
    config_lib.require(bool(self.dataset), "the data source 'tfds:' needs a dataset name, e.g. "
                       "'tfds:mnist'")
    self.image_key, self.label_key = config.image_key, config.label_key
    self._train_src = _open(self.dataset, config.train_split, config)
    self._eval_src = _open(self.dataset, config.eval_split, config)
    self.train_split, self.eval_split = config.train_split, config.eval_split
    features = self._train_src.dataset_info.features
    self.input_shape, self._scale = self._image_spec(features)
    self.output_dim = self._num_classes(features)
    # The index stream: epoch after epoch, each a fresh permutation of the split.
    self._order = grain.MapDataset.range(len(self._train_src)).shuffle(seed=self.seed).repeat()

  def _image_spec(self, features) -> tuple[tuple[int, ...], float]:
    keys = ", ".join(features.keys())
    config_lib.require(self.image_key in features, f"config.data.image_key={self.image_key!r} "
                       f"is not a feature of {self.dataset}; features: {keys}")
    image = features[self.image_key]
    shape = tuple(image.shape)
    config_lib.require(bool(shape) and all(d is not None for d in shape),
                       f"{self.dataset}/{self.image_key} has no fixed shape ({shape}); only "
                       "fixed-size images are supported")
    scale = 1.0 / 255.0 if np.dtype(image.np_dtype) == np.uint8 else 1.0
    return shape, scale

  def _num_classes(self, features) -> int:
    keys = ", ".join(features.keys())
    config_lib.require(self.label_key in features, f"config.data.label_key={self.label_key!r} "
                       f"is not a feature of {self.dataset}; features: {keys}")
    num_classes = getattr(features[self.label_key], "num_classes", None)
    config_lib.require(num_classes is not None, f"{self.dataset}/{self.label_key} is not a "
                       "ClassLabel feature, so the number of classes is unknown")
    return int(num_classes)

  def _read(self, src, indices: list[int]) -> dict[str, np.ndarray]:
    """Examples `indices` of `src` as {'x': float32 [n, ...], 'y': int32 [n]}."""
    try:
      records = src.__getitems__(indices)  # one batched read: ~3x faster than one at a time
    except TypeError:  # tfds.testing.mock_data's source has a broken __getitems__
      records = [src[i] for i in indices]
    x = np.stack([np.asarray(r[self.image_key]) for r in records]).astype(np.float32)
    return {"x": x * np.float32(self._scale),
            "y": np.array([r[self.label_key] for r in records], np.int32)}

  def host_batch(self, step):
    start = int(step) * self.batch_size
    indices = [int(self._order[j]) for j in range(start, start + self.batch_size)]
    return {**self._read(self._train_src, indices),
            "mask": np.ones((self.batch_size,), np.float32)}

  def host_batches(self, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """host_batch(start_step), host_batch(start_step + 1), ..., read ahead by 4 threads."""
    steps = grain.MapDataset.range(int(start_step), sys.maxsize).map(self.host_batch)
    yield from steps.to_iter_dataset(grain.ReadOptions(num_threads=4, prefetch_buffer_size=8))

  def eval_batches(self, batch_size, step=0):
    del step  # the eval split does not change
    config_lib.require(batch_size >= 1, f"eval batch size must be >= 1, got {batch_size}")
    num = len(self._eval_src)
    for start in range(0, num, batch_size):
      arrays = self._read(self._eval_src, list(range(start, min(start + batch_size, num))))
      arrays["mask"] = np.ones(len(arrays["y"]), np.float32)
      yield from padded_batches(arrays, batch_size)

  def describe(self):
    shape = "x".join(map(str, self.input_shape))
    return (f"{self.name}: {len(self._train_src)} {self.train_split} / {len(self._eval_src)} "
            f"{self.eval_split}, {shape}, {self.output_dim} classes")


def build(config: ml_collections.ConfigDict, batch_size: int) -> TfdsSource:
  return TfdsSource(config, batch_size)

