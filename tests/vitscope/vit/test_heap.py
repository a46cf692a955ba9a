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


def in_fresh_process(code: str, *argv: str) -> dict:
    """Run `code` with `argv` (it prints one JSON object last) in a new interpreter; return that object."""
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


REUSE = """
import json, resource, sys, torch
from vitscope.vit.heap import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "kept" else False
torch.manual_seed(0)
mlp = torch.nn.Sequential(
    torch.nn.LayerNorm(384), torch.nn.Linear(384, 1536), torch.nn.GELU(), torch.nn.Linear(1536, 384)
)
x = torch.randn(16384, 384)  # a ViT-S MLP on 83 images of 197 tokens: 24 to 96 MiB per activation
faults = []
with torch.no_grad():
    for _ in range(12):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        x = x + mlp(x)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "faults": faults}))
"""


def test_a_residual_mlp_reuses_its_freed_activations_instead_of_faulting_them_in_again():
    default = in_fresh_process(REUSE, "default")
    kept = in_fresh_process(REUSE, "kept")
    # glibc maps every activation afresh, every pass (at least a fault per 2 MiB even with huge pages)
    assert not default["applied"] and min(default["faults"][1:]) >= 96 * MIB // (2 * MIB)
    # kept, the heap grows for the first passes (until freed holes have merged: a tensor's alignment
    # slack keeps it out of a hole of its own size); after that most passes fault nothing, and now and
    # then one grows it by an activation when no freed hole fits (seen: up to two of eight, 43k faults
    # against glibc's 442k), so the last eight passes are judged together
    later, before = kept["faults"][-8:], default["faults"][-8:]
    assert kept["applied"] and later.count(0) >= 4 and sum(later) * 4 < sum(before), kept


RELEASE = """
import json, torch
from vitscope.vit.heap import keep_freed_memory, release_freed_memory
from worker.guard import resident_bytes as resident

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
