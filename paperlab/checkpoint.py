"""Checkpoints: a thin wrapper over Orbax's CheckpointManager. The only module that imports orbax.

What it guarantees the trainer:
- saves are atomic (Orbax writes to a temporary directory and renames it when complete), so a run
  killed mid-save leaves the previous checkpoints intact;
- restore goes through an abstract target built from the *current* state (shapes, dtypes and
  shardings), so a run restores onto whatever devices it now has;
- a corrupt or half-written latest checkpoint is reported with a warning and the previous one is
  used instead.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class Checkpointer:
  """Periodic and final saves of one pytree, keeping the newest `max_to_keep`."""

  def __init__(self, directory: str | pathlib.Path, *, max_to_keep: int):
    self.directory = pathlib.Path(directory).absolute()
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any) -> None:
    """Starts saving `state` as `step` (asynchronously; `wait` or `close` finishes it)."""
    if step in self._manager.all_steps():
      return  # already saved at this step, e.g. a final save right after a periodic one
    self._manager.save(step, args=ocp.args.StandardSave(state))

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def restore_latest(self, target: Any) -> tuple[int, Any] | None:
    """(step, state) from the newest checkpoint that restores, or None if there is none.

    `target` is a state with the current shapes, dtypes and shardings; only its structure is used.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    for step in reversed(self.steps()):
      try:
        state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
      except Exception as error:  # pylint: disable=broad-except  # any read failure means: try older
        log.warning("checkpoint at step %d could not be restored (%s: %s); falling back to the previous one",
                    step, type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "")
        print(f"warning: checkpoint at step {step} is corrupt or incomplete "
              f"({type(error).__name__}); falling back to the previous one")
        continue
      return step, state
    return None

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
