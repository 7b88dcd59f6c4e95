"""Every ```python block of README.md runs as pasted, on its own, in a fresh interpreter.

A block that can only run on a GPU says so on a line of its own, ``# needs: cuda``; it is
skipped where neither GPU backend is available.  No other block is skipped: one that is
slow or needs data is made small and self-contained in the README instead.  Each block
runs in an empty temporary folder (files it writes land there) and inherits the tests'
environment, including their private autotune cache (tests/conftest.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"

#: A fenced block whose info string is exactly "python"; group 1 is its code.
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)

#: The line that marks a block as GPU-only.
NEEDS_CUDA = "# needs: cuda"


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number of the opening fence, code)`` of every ```python block of ``text``."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


BLOCKS = python_blocks(README.read_text())


def _has_gpu() -> bool:
    import fastnn

    available = fastnn.backends()
    return any(available.get(name, (False, ""))[0] for name in ("cupy", "numba-cuda"))


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 3, "the block pattern no longer matches README.md's fences"


def test_the_block_pattern_finds_each_block_once():
    text = "intro\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = 2\n```\n"
    assert python_blocks(text) == [(2, "a = 1\n"), (8, "b = 2\n")]


@pytest.mark.parametrize("line,code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_python_block_runs_as_pasted(line, code, tmp_path):
    if any(row.strip() == NEEDS_CUDA for row in code.splitlines()) and not _has_gpu():
        pytest.skip(f"README.md:{line} needs a GPU")
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, (
        f"the python block at README.md:{line} fails when pasted on its own:\n{code}\n"
        f"{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    )
