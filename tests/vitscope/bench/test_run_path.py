"""`vitscope bench run-path`: `vitscope run` timed as fresh processes, whole and by phase."""

import json

from vitscope.cli import main

RUN = ["--kind", "eigencam", "--model", "random:vit-micro", "--dataset", "synthscenes:4", "--device", "cpu"]
RUN += ["--param", "baselines=false", "--param", "sanity_check=false", "--param", "faithfulness=false"]
PHASES = ("import_torch", "import_transformers", "import_model_layer", "command_line", "load_model")
PHASES += ("analysis", "write")


def test_the_run_is_timed_whole_then_by_phase_then_its_inputs_alone(capsys):
    assert main(["bench", "run-path", *RUN, "--repeats", "1"]) == 0
    wall, phases, inputs = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines())
    assert [wall["what"], phases["what"], inputs["what"]] == ["wall", "phases", "inputs"]
    assert wall["wall_s"] > 0 and isinstance(wall["bytecode"], bool)
    assert wall["cache"] == "empty" and phases["cache"] == "kept"  # the first run draws, the next reads
    parts = [phases[f"{name}_s"] for name in (*PHASES, "python", "exit")]
    assert all(p >= 0 for p in parts) and sum(parts) <= phases["wall_s"]
    assert phases["wall_s"] - sum(parts) < 0.5 * phases["wall_s"]  # the clock covers the run, not a part
    assert inputs["images"] == 4 and inputs["inputs_s"] > 0


def test_a_run_that_fails_is_one_readable_line(capsys):
    bad = [*RUN, "--param", "wibble=1", "--repeats", "1"]
    assert main(["bench", "run-path", *bad]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("vitscope: error: the run failed (exit 2)") and "wibble" in last
