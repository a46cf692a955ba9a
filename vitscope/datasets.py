"""Dataset specs (torch-free): `synthscenes:N[:seed=S]` and `synthsearch:N[:seed=S][:layout=L]`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vitscope.errors import UserError

MAX_IMAGES = 100_000
_LAYOUT = re.compile(r"^(grid:\d+x\d+|free:\d+)$")


@dataclass(frozen=True)
class DatasetSpec:
    """A built-in dataset: `name` synthscenes or synthsearch, `n` items, `seed`, `layout` (search only)."""

    name: str
    n: int
    seed: int = 0
    layout: str = "grid:6x14"

    def __str__(self) -> str:
        text = f"{self.name}:{self.n}:seed={self.seed}"
        return f"{text}:layout={self.layout}" if self.name == "synthsearch" else text


def parse_dataset_spec(text: str) -> DatasetSpec:
    """Parse `synthscenes:N[:seed=S]` or `synthsearch:N[:seed=S][:layout=grid:RxC|free:N]`."""
    name, _, rest = text.strip().partition(":")
    if name not in ("synthscenes", "synthsearch"):
        raise UserError(f"unknown dataset {text!r}: use synthscenes:N[:seed=S] or synthsearch:N[:seed=S]")
    count, *options = rest.split(":", 1)
    if not count.isdigit() or not 0 < int(count) <= MAX_IMAGES:
        raise UserError(f"dataset {text!r}: N must be a whole number from 1 to {MAX_IMAGES}")
    seed, layout = 0, "grid:6x14"
    for key, value in _options(options[0] if options else "", text):
        if key == "seed" and value.isdigit():
            seed = int(value)
        elif key == "layout" and name == "synthsearch" and _LAYOUT.match(value):
            layout = value
        else:
            raise UserError(f"dataset {text!r}: bad option {key}={value!r}")
    return DatasetSpec(name, int(count), seed, layout)


def _options(text: str, spec: str) -> list[tuple[str, str]]:
    # layout values contain ':' (grid:6x14), so split on ':' only before 'key='
    parts = re.split(r":(?=\w+=)", text) if text else []
    out = []
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq:
            raise UserError(f"dataset {spec!r}: expected key=value, got {part!r}")
        out.append((key, value))
    return out
