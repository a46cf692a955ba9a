"""Dataset specs (torch-free): the one place that reads `synthscenes:N[:seed=S]` and
`synthsearch:N[:seed=S][:layout=grid:RxC|free:N]`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from vitscope.contracts.errors import UserError

MAX_IMAGES = 100_000
MAX_OBJECTS = 200
"""The most objects one search scene may hold (a layout's R x C or N; OAT's shelves have 84)."""
MAX_SEED = 2**63 - 1 - 2**32
"""The largest dataset seed (as `vitscope.contracts.kinds.base.MAX_SEED`: the worker offsets seeds)."""
DEFAULT_LAYOUT = "grid:6x14"


@dataclass(frozen=True)
class DatasetSpec:
    """A built-in dataset: `name` synthscenes or synthsearch, `n` items, `seed`, `layout` (search only)."""

    name: str
    n: int
    seed: int = 0
    layout: str = DEFAULT_LAYOUT

    def __str__(self) -> str:
        text = f"{self.name}:{self.n}:seed={self.seed}"
        return f"{text}:layout={self.layout}" if self.name == "synthsearch" else text


def parse_dataset_spec(text: str) -> DatasetSpec:
    """Parse either built-in dataset spec into a normalized `DatasetSpec`; raise UserError naming the bad part."""
    name = text.strip().split(":", 1)[0]
    if name == "synthsearch":
        n, seed, layout = parse_search_spec(text)
        return DatasetSpec(name, n, seed, layout)
    if name != "synthscenes":
        raise UserError(
            f"unknown dataset {text!r}: use synthscenes:N[:seed=S] (labelled images) "
            "or synthsearch:N[:seed=S][:layout=grid:RxC] (search scenes)"
        )
    n, seed = parse_synth_spec(text)
    return DatasetSpec(name, n, seed)


class Layout(NamedTuple):
    """A parsed search layout: kind "grid" (rows x cols cells) or "free" (n_objects anywhere)."""

    kind: str
    rows: int
    cols: int
    n_objects: int


def parse_layout(layout: str) -> Layout:
    """Parse `grid:RxC` or `free:N`; returns a `Layout`, raising UserError naming the bad part."""
    grid = re.fullmatch(r"grid:([0-9]{1,4})x([0-9]{1,4})", layout)
    free = re.fullmatch(r"free:([0-9]{1,9})", layout)
    parsed = None
    if grid and int(grid[1]) >= 1 and int(grid[2]) >= 1:
        parsed = Layout("grid", int(grid[1]), int(grid[2]), int(grid[1]) * int(grid[2]))
    elif free and int(free[1]) >= 1:
        parsed = Layout("free", 0, 0, int(free[1]))
    if parsed is None:
        raise UserError(
            f"layout {layout!r} is not 'grid:RxC' or 'free:N' with R, C, N >= 1 (e.g. grid:6x14 or free:12)"
        )
    if parsed.n_objects > MAX_OBJECTS:
        raise UserError(f"layout {layout!r} has {parsed.n_objects} objects; at most {MAX_OBJECTS} per scene")
    return parsed


def _spec_int(text: str, what: str, spec: str, minimum: int, maximum: int = MAX_SEED) -> int:
    """`text` as an int in [minimum, maximum] (ASCII digits only), else UserError naming it."""
    if not re.fullmatch(r"[0-9]{1,19}", text) or not minimum <= int(text) <= maximum:
        raise UserError(
            f"dataset spec {spec!r}: {what} {text[:40]!r} is not an integer from {minimum} to {maximum}"
        )
    return int(text)


def _spec_head(spec: str, name: str, usage: str) -> tuple[int, list[str]]:
    """Check the `name:N` head of a spec; returns N and the remaining ':'-separated parts."""
    parts = spec.strip().split(":")
    if parts[0] != name:
        raise UserError(f"dataset spec {spec!r} does not start with '{name}:' (expected {usage})")
    if len(parts) < 2 or not parts[1]:
        raise UserError(f"dataset spec {spec!r} is missing the count N (expected {usage})")
    return _spec_int(parts[1], "count N", spec, 1, MAX_IMAGES), parts[2:]


def parse_synth_spec(spec: str) -> tuple[int, int]:
    """Parse `synthscenes:N[:seed=S]`; returns (N, seed), raising UserError naming the bad part."""
    usage = "synthscenes:N[:seed=S], e.g. synthscenes:500:seed=1"
    n, rest = _spec_head(spec, "synthscenes", usage)
    if len(rest) > 1 or (rest and not rest[0].startswith("seed=")):
        raise UserError(f"dataset spec {spec!r}: unexpected part {':'.join(rest)!r} (expected {usage})")
    seed = _spec_int(rest[0][len("seed=") :], "seed", spec, 0) if rest else 0
    return n, seed


def parse_search_spec(spec: str) -> tuple[int, int, str]:
    """Parse `synthsearch:N[:seed=S][:layout=L]` (L as in `parse_layout`); returns (N, seed, layout)."""
    usage = "synthsearch:N[:seed=S][:layout=grid:RxC|free:N], e.g. synthsearch:100:seed=0:layout=grid:6x14"
    n, rest = _spec_head(spec, "synthsearch", usage)
    found: dict[str, str] = {}
    while rest:
        part = rest.pop(0)
        key = part.split("=", 1)[0]
        if key not in ("seed", "layout") or "=" not in part:
            raise UserError(f"dataset spec {spec!r}: unexpected part {part!r} (expected {usage})")
        if key in found:
            raise UserError(f"dataset spec {spec!r}: {key} is given twice")
        # a layout value has its own colon ("grid:6x14"), so it takes the next part with it
        found[key] = part[len(key) + 1 :] + (":" + rest.pop(0) if key == "layout" and rest else "")
    seed = _spec_int(found["seed"], "seed", spec, 0) if "seed" in found else 0
    layout = found.get("layout", DEFAULT_LAYOUT)
    parse_layout(layout)
    return n, seed, layout
