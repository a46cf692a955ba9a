"""`/job?job=<id>`: any one job, shown from its kind's declaration.

The view of a kind this dashboard has no page for (a kind declared elsewhere, through
`VITSCOPE_EXTRA_KINDS` or the `vitscope.kinds` entry points), and a page `Kind.page` may name:
the job's record, its summary as JSON, and each declared result array's name, dims, shape,
dtype and meaning, read through the API like every other view.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dash import Output, html

from frontend import ids
from frontend.components import card, page_header
from frontend.page import ViewPage, Views
from frontend.results import Results
from frontend.state import JobState
from vitscope.contracts.kinds import ArraySpec

RECORD_FIELDS = ("id", "kind", "model", "inputs", "params", "status", "created", "updated")


@dataclass
class Built(Views):
    """The job's record, summary and result tables (empty until the job is done)."""

    content: list[Any] = field(default_factory=list)


PAGE = ViewPage(
    __name__, JobState, ids.JOB, (), Built, name="Job", title="Job · vitscope", order=90, nav=False
)
build = PAGE.build


@PAGE.body
def body(state: JobState, built: Built) -> list[Any]:
    """Title, then the job's tables (or why there are none yet)."""
    return [
        page_header("Job", "A job's record, its summary and the result arrays its kind declares."),
        html.Div(content(built), id=ids.JOB_CONTENT),
    ]


def content(built: Built) -> list[Any]:
    """The job's tables, or a line saying why they are not there yet."""
    return built.content or [html.P(built.messages.get("job", "…"), className="muted")]


@PAGE.render(Output(ids.JOB_CONTENT, "children"))
def render(state: JobState, built: Built) -> tuple[Any, ...]:
    """The job's tables for the state (they appear once the job is done)."""
    return (content(built),)


@PAGE.part("job", (), absent="No job in this link: open one from the recent jobs on Home.")
def _draw(results: Results, state: JobState, built: Built) -> None:
    kind = results.kind
    title = f"{kind.title} · {kind.help}" if kind else f"{results.record.get('kind')} (not declared here)"
    built.content = [
        html.Div(
            [
                card(_record_table(results.record), span=6, title=title),
                card(
                    html.Pre(json.dumps(results.summary, indent=2), className="json"), span=6, title="Summary"
                ),
                card(_arrays_table(results), span=12, title="Result arrays"),
            ],
            className="grid",
        )
    ]


def _record_table(record: dict[str, Any]) -> html.Table:
    """The record's main fields, one row each (inputs and params as JSON)."""
    rows = [
        html.Tr([html.Th(name), html.Td(_text(record.get(name)))]) for name in RECORD_FIELDS if name in record
    ]
    return html.Table(html.Tbody(rows), className="facts")


def _text(value: Any) -> Any:
    return html.Code(json.dumps(value)) if isinstance(value, dict | list) else str(value)


def _arrays_table(results: Results) -> html.Table:
    """One row per declared result array (then any the job has that its kind does not declare):
    name, declared dims, the shape and dtype the job produced, meaning."""
    declared = dict(results.kind.results) if results.kind else {}
    # a record that lists no results (an older API) leaves every declared one to try
    produced = [name for name in results.names if name != "summary"] or list(declared)
    names = list(declared) + [name for name in produced if name not in declared]
    head = html.Tr([html.Th(text) for text in ("result", "dims", "shape", "dtype", "meaning")])
    rows = [_array_row(results, name, declared.get(name), name in produced) for name in names]
    return html.Table([html.Thead(head), html.Tbody(rows)], className="facts")


def _array_row(results: Results, name: str, spec: ArraySpec | None, produced: bool) -> html.Tr:
    """A result's row: its shape and dtype read through the API, `not computed` when absent."""
    array = results.optional(name) if produced else None
    meaning = (spec.description if spec else "not declared by its kind") + (
        " (optional)" if spec and spec.optional else ""
    )
    cells: list[Any] = [
        html.Code(name),
        spec.shape_text() if spec else "",
        str(tuple(array.shape)) if array is not None else "not computed",
        str(array.dtype) if array is not None else (spec.dtype if spec else ""),
        meaning,
    ]
    return html.Tr([html.Td(cell) for cell in cells])
