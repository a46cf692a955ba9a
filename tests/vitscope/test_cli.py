"""The CLI as a process: what it sets up before any command runs."""

import subprocess
import sys

import pytest

from vitscope.vit.heap import _glibc

KEPT = """
import torch
from vitscope.cli import main
from worker.guard import resident_bytes as resident

main(["kinds"])
start = resident()
x = torch.ones(64 * 2**20)  # 256 MiB, freed at once
del x
print(resident() - start)
"""


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only")
def test_the_cli_keeps_freed_tensor_memory_for_the_next_tensor():
    done = subprocess.run([sys.executable, "-c", KEPT], capture_output=True, text=True, check=True)
    assert int(done.stdout.strip().splitlines()[-1]) > 250 * 2**20  # still resident: reused, not re-faulted
