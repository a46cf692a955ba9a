"""The CLI as a process: what it sets up before any command runs, and how it leaves."""

import json
import subprocess
import sys

import pytest

from vitscope.cli import GC_THRESHOLD, build_parser
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


def test_a_named_command_registers_its_module_alone_and_a_bare_call_every_command():
    code = (
        "import sys; from vitscope.cli import build_parser; "
        "p = build_parser(['run', 'eigencam']); "
        "print(sorted(m for m in sys.modules if m.startswith('vitscope.commands.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['vitscope.commands.run']"
    listed = build_parser(["run"]).format_help()
    assert "    run " in listed and "    bench " not in listed
    every = build_parser().parse_args(["eval", "demo", "--dataset", "synthscenes:4"])
    assert every.command == "eval"  # a command named unlike its module (info.py) still parses
    assert build_parser(["kinds"]).parse_args(["kinds"]).command == "kinds"


RUN = ["run", "eigencam", "--model", "random:vit-micro", "--dataset", "synthscenes:3", "--device", "cpu"]
RUN += ["--param", "baselines=false", "--param", "sanity_check=false", "--param", "faithfulness=false"]


def test_the_run_command_as_a_process_writes_everything_and_leaves_with_its_status(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vitscope", *RUN, "--out", str(out), "--json"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == str(out)  # printed whole before the quick exit
    assert json.loads((out / "summary.json").read_text())["images"] == 3
    work = tmp_path / "work"
    work.mkdir()
    bad = subprocess.run([*command[:-3], "--param", "wibble=1"], capture_output=True, text=True, cwd=work)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("vitscope: error:")
    assert not list(work.iterdir())  # nothing written for a refused request


def test_the_process_collects_its_garbage_less_often_than_pythons_default():
    code = "import gc, sys; sys.argv = ['vitscope', 'kinds']; from vitscope.cli import entry\n"
    code += "try:\n    entry()\nexcept SystemExit:\n    print(gc.get_threshold())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == str(GC_THRESHOLD) and GC_THRESHOLD[0] > 700
