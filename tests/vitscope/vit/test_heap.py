"""Freed tensor memory is kept for the next tensor, and given back on request (glibc's malloc).

Each case runs in a fresh interpreter: the allocator's behaviour is set for a whole process, and
this one's must stay as it was for the other tests."""

import json
import subprocess
import sys

import pytest

from vitscope.vit.heap import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only")

MIB = 2**20


def in_fresh_process(code: str) -> dict:
    """Run `code` (which prints one JSON object last) in a new interpreter; return that object."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


REUSE = """
import json, resource, sys, torch
from vitscope.vit.heap import keep_freed_memory
applied = keep_freed_memory() if sys.argv[-1] == "kept" else False
for _ in range(8):  # the first rounds grow the heap: a tensor's alignment slack keeps it from
    # fitting the hole of the one before until freed holes have merged
    x = torch.ones(16 * 2**20)
    del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    x = torch.ones(16 * 2**20)  # 64 MiB
    del x
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def test_a_freed_64_mib_tensor_is_reused_without_faulting_its_pages_in_again():
    default = in_fresh_process(REUSE.replace("sys.argv[-1]", "'default'"))
    kept = in_fresh_process(REUSE.replace("sys.argv[-1]", "'kept'"))
    huge_pages = 3 * 64 * MIB // (2 * MIB)  # the fewest faults of three fresh 64 MiB mappings
    assert not default["applied"] and default["faults"] >= huge_pages  # mmap'd afresh every time
    assert kept["applied"] and kept["faults"] * 20 < default["faults"]


RELEASE = """
import json, os, torch
from vitscope.vit.heap import keep_freed_memory, release_freed_memory

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

keep_freed_memory()
start = resident()
x = torch.ones(64 * 2**20)  # 256 MiB
del x
kept = resident()
release_freed_memory()
print(json.dumps({"kept": kept - start, "released": resident() - start}))
"""


def test_release_gives_the_kept_pages_back():
    got = in_fresh_process(RELEASE)
    assert got["kept"] > 250 * MIB  # freed, but still resident for the next tensor
    assert got["released"] < 10 * MIB
