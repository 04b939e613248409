"""Every ```python block in README.md runs as written (each block on its own)."""
import pathlib
import re

import pytest

README = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_snippets():
  assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_snippet_runs(index):
  exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), {})  # pylint: disable=exec-used
