"""Kinds are declared once: the schema check, and a new kind showing up in every tier untouched."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vitscope.contracts import kinds
from vitscope.contracts.kinds import ArraySpec, Kind, Params, ResultSchemaError, Summary, check_result

ROOT = Path(__file__).resolve().parents[3]


class _Summary(Summary):
    images: int


TOY = Kind(
    name="toy",
    title="Toy",
    help="a toy",
    params=Params,
    summary=_Summary,
    results={
        "per_head": ArraySpec(("L", "H"), "float"),
        "per_image": ArraySpec(("N", "L", "H"), "float"),
        "labels": ArraySpec(("N",), "int"),
        "image": ArraySpec(("N?", 8, 8, 3), "uint8", optional=True),
    },
    run="nowhere:run",
    page="/job",
    url_key="job",
)


def good() -> dict[str, np.ndarray]:
    return {
        "per_head": np.zeros((2, 3), np.float32),
        "per_image": np.zeros((5, 2, 3), np.float32),
        "labels": np.zeros(5, np.int64),
    }


def test_a_result_that_keeps_its_schema_passes():
    check_result(TOY, good(), {"images": 5})
    check_result(TOY, {**good(), "image": np.zeros((8, 8, 3), np.uint8)}, {"images": 5})  # N? squeezed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": np.zeros(1)}, "array 'extra' is not declared"),
        ({"labels": None}, "required array 'labels' is missing"),
        (
            {"per_image": np.zeros((5, 2, 4), np.float32)},
            "array 'per_image' axis 2 (H) has size 4, but H is 3",
        ),
        (
            {"per_head": np.zeros((2, 3, 1), np.float32)},
            "array 'per_head' has shape (2, 3, 1), declared (L, H)",
        ),
        ({"labels": np.zeros(5, np.float32)}, "array 'labels' has dtype float32, declared int"),
        ({"image": np.zeros((5, 8, 9, 3), np.uint8)}, "array 'image' axis 2 (8) has size 9"),
    ],
)
def test_a_result_that_breaks_its_schema_is_refused_naming_the_array(change, message):
    arrays = {k: v for k, v in {**good(), **change}.items() if v is not None}
    with pytest.raises(ResultSchemaError) as err:
        check_result(TOY, arrays, {"images": 5})
    assert message in str(err.value)


def test_a_summary_that_breaks_its_model_is_refused_naming_the_field():
    with pytest.raises(ResultSchemaError, match="toy summary: undeclared_key"):
        check_result(TOY, good(), {"images": 5, "undeclared_key": 1})


def test_every_built_in_kind_is_declared_in_its_own_module_in_order():
    assert kinds.names() == [
        "head-importance",
        "attention-profile",
        "attention-patterns",
        "eigencam",
        "scanpath",
        "head-detail",
        "head-pruning",
    ]
    for kind in kinds.all_kinds().values():
        assert kind.run.startswith("vitscope.") and kind.dashboard_path("x").endswith("=x")
    places = [(kind.page, kind.url_key) for kind in kinds.all_kinds().values()]
    assert len(set(places)) == len(places)  # a page tells its kinds' jobs apart by the URL key


def test_the_head_pages_light_kinds_are_interactive_and_not_launched_from_the_form():
    interactive = {name: kind for name, kind in kinds.all_kinds().items() if kind.interactive}
    assert set(interactive) == {"head-detail", "head-pruning"}
    assert not any(kind.default_launch for kind in interactive.values())
    assert kinds.get("head-detail").dashboard_path("j") == "/head?hd=j"
    assert kinds.get("head-pruning").dashboard_path("j") == "/head?hp=j"


def test_an_unknown_kind_is_refused_naming_the_known_ones():
    with pytest.raises(kinds.UserError, match="unknown kind 'nope': one of head-importance"):
        kinds.get("nope")
    with pytest.raises(kinds.UserError):
        kinds.get(["head-importance"])


def test_docs_kinds_md_is_generated_from_the_declarations():
    from vitscope.commands.kinds import markdown

    assert (ROOT / "docs" / "KINDS.md").read_text() == markdown(list(kinds.all_kinds().values())), (
        "docs/KINDS.md is stale: run `vitscope kinds --markdown > docs/KINDS.md`"
    )


TOY_MODULE = '''
"""A toy kind: the mean pixel value of each image, as a new contributor would add one."""

import numpy as np
from pydantic import Field

from vitscope.contracts.kinds import ArraySpec, Kind, Params, Summary


class ToyBrightnessParams(Params):
    """How to scale the brightness."""

    scale: float = Field(default=1.0, gt=0, le=10, description="multiplies every brightness")


class ToyBrightnessSummary(Summary):
    images: int
    mean: float


def run(lm, source, params, progress):
    from vitscope.vit.analysis.base import AnalysisResult

    values = [b.images.reshape(len(b.images), -1).mean(1) for b in source.batches(8, lm.layout.image_size)]
    brightness = np.concatenate(values).astype(np.float32) * params.scale
    progress(1.0, "done")
    summary = {"images": len(brightness), "mean": float(brightness.mean())}
    return AnalysisResult({"brightness": brightness}, summary)


KIND = Kind(
    name="toy-brightness",
    title="Toy brightness",
    help="mean pixel value per image (a toy kind for the registry test)",
    params=ToyBrightnessParams,
    summary=ToyBrightnessSummary,
    results={"brightness": ArraySpec(("N",), "float", "mean pixel value")},
    run="toykind:run",
    page="/job",
    url_key="job",
)
'''


@pytest.fixture(scope="module")
def toy_env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toykind")
    (folder / "toykind.py").write_text(textwrap.dedent(TOY_MODULE))
    path = os.pathsep.join([str(folder), str(ROOT)])
    return {**os.environ, "VITSCOPE_EXTRA_KINDS": "toykind", "PYTHONPATH": path}


def python(env, code):
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_new_kind_appears_in_the_api_schema(toy_env):
    code = "import json; from backend.api.main import app; print(json.dumps(app.openapi()))"
    schema = json.loads(python(toy_env, code))
    body = schema["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/ToyBrightnessJob"} in body["oneOf"]
    params = schema["components"]["schemas"]["ToyBrightnessParams"]["properties"]
    assert params["scale"]["description"] == "multiplies every brightness"


@pytest.mark.slow
def test_a_new_kind_appears_in_the_cli_and_runs_there(toy_env, tmp_path):
    cli = [sys.executable, "-m", "vitscope"]
    helped = subprocess.run([*cli, "run", "--help"], env=toy_env, capture_output=True, text=True, check=True)
    assert "toy-brightness" in helped.stdout and "mean pixel value per image" in helped.stdout
    args = ["toy-brightness", "--model", "random:vit-micro", "--dataset", "synthscenes:3", "--json"]
    ran = subprocess.run(
        [*cli, "run", *args, "--param", "scale=2", "--out", str(tmp_path)],
        env=toy_env,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["images"] == 3 and summary["model"]["spec"] == "random:vit-micro"
    assert np.load(tmp_path / "brightness.npy").shape == (3,)


def test_a_new_kind_gets_a_generated_fake_result(toy_env):
    code = """
import json
from vitscope.contracts import kinds
from tests.frontend.fake_api import FakeModel, results_for, summary_for
record = {"kind": "toy-brightness", "params": {"scale": 1.0}, "inputs": {"dataset": "synthscenes:4"}}
arrays, summary = results_for(record, FakeModel()), summary_for(record, FakeModel())
kinds.check_result(kinds.get("toy-brightness"), arrays, summary)
print(json.dumps(sorted(arrays)))
"""
    assert json.loads(python(toy_env, code)) == ["brightness"]


def test_a_new_kind_appears_in_the_dashboard_launch_list(toy_env):
    code = """
import json
import dash
from frontend.app import create_app
create_app()
home = dash.page_registry["frontend.pages.home"]["layout"]()
def values(node):
    found = [o["value"] for o in getattr(node, "options", None) or [] if isinstance(o, dict)]
    children = getattr(node, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str):
            found += values(child)
    return found
print(json.dumps(values(home)))
"""
    assert "toy-brightness" in json.loads(python(toy_env, code))
