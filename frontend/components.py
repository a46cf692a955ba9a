"""Small layout pieces shared by the pages: cards, graphs, notices, progress bars, controls."""

from __future__ import annotations

from typing import Any, cast

import plotly.graph_objects as go
from dash import dcc, html

from frontend import ids
from frontend.api import JobRecord
from frontend.figures import graph_config

NoticeKind = str  # "error" | "warn" | "info" | "ok"


def notice(
    message: Any, kind: NoticeKind = "error", actions: list[Any] | None = None, note_id: str | None = None
) -> html.Div:
    """A readable message box (API errors, missing jobs, hints); `actions` are buttons or links,
    `note_id` the element id a test finds it by."""
    body: list[Any] = [html.Span(message, className="notice-text")]
    if actions:
        body.append(html.Span(actions, className="notice-actions"))
    role = "alert" if kind == "error" else "status"
    named: dict[str, Any] = {"id": note_id} if note_id else {}
    return html.Div(body, className=f"notice notice-{kind}", role=role, **named)


def card(
    children: Any, span: int = 4, title: str | None = None, class_name: str = "", **props: Any
) -> html.Div:
    """A grid cell of `span` twelfths of the page width; `props` (id, style) go to its Div."""
    head = [html.Div(title, className="card-title")] if title else []
    return html.Div([*head, *_as_list(children)], className=f"card span-{span} {class_name}".strip(), **props)


def graph_card(
    name: str, figure: go.Figure, span: int = 4, loading: bool = True, style: dict[str, str] | None = None
) -> html.Div:
    """A card (id `ids.card(name)`) holding the graph `name` (exported as `vitscope-<name>.png|svg`)."""
    graph = dcc.Graph(
        id=ids.graph(name),
        figure=figure,
        config=cast(Any, graph_config(f"vitscope-{name}")),  # a plain dict is what Dash sends anyway
        className="graph",
    )
    inner = dcc.Loading(graph, type="dot", delay_show=400, color="#e0245e") if loading else graph
    return card(inner, span=span, id=ids.card(name), style=style or {})


def field(label: str, control: Any, hint: str | None = None, class_name: str = "") -> html.Label:
    """A labelled control (label above, optional hint below)."""
    parts: list[Any] = [html.Span(label, className="field-label"), control]
    if hint:
        parts.append(html.Span(hint, className="field-hint"))
    return html.Label(parts, className=f"field {class_name}".strip())


def page_header(title: str, subtitle: str, controls: list[Any] | None = None) -> html.Div:
    """The page title line, with the page's main controls on the right."""
    return html.Div(
        [
            html.Div([html.H1(title), html.P(subtitle, className="subtitle")], className="page-title"),
            html.Div(controls or [], className="page-controls"),
        ],
        className="page-header",
    )


def progress_row(label: str, record: JobRecord) -> html.Div:
    """One job's status: kind, short id, a progress bar, the worker's last message or error, and a
    cancel button while the job is queued or running and the visitor may cancel it (the API's
    `may_delete`: with authentication on, only the token that submitted it; `ids.JOB_CANCEL`, handled
    by the tracker)."""
    status = str(record.get("status", "queued"))
    progress = 1.0 if status == "done" else float(record.get("progress") or 0.0)
    text = record.get("error") if status == "failed" else record.get("message")
    return html.Div(
        [
            html.Span(label, className="job-kind"),
            html.Code(str(record.get("id", ""))[:12], className="job-id", title=str(record.get("id", ""))),
            html.Span(status, className=f"badge badge-{status}"),
            html.Div(
                html.Div(className=f"bar-fill bar-{status}", style={"width": f"{100 * progress:.0f}%"}),
                className="bar",
                title=f"{100 * progress:.0f}%",
            ),
            html.Span(f"{100 * progress:.0f}%", className="job-pct"),
            html.Span(
                str(text or ""), className="job-message" + (" job-error" if status == "failed" else "")
            ),
            *_cancel_button(status, str(record.get("id", "")), record.get("may_delete") is not False),
        ],
        className=f"job-row job-{status}",
    )


def _cancel_button(status: str, job_id: str, allowed: bool) -> list[html.Button]:
    if status not in ("queued", "running") or not job_id or not allowed:
        return []
    button_id = {"type": ids.JOB_CANCEL, "job": job_id}
    return [html.Button("Cancel", id=button_id, className="button button-small button-ghost job-cancel")]


def short_id(job_id: str | None) -> str:
    """The first 12 hex digits of a job id (enough to recognise it)."""
    return (job_id or "")[:12]


def _as_list(children: Any) -> list[Any]:
    return list(children) if isinstance(children, list | tuple) else [children]


def image_launcher(
    id_prefix: str, model: str, upload_text: str, dataset: str, model_width: str = "w-200"
) -> list[Any]:
    """The model field, an image upload and a built-in dataset with its Run button.

    Component ids are `ids.<PREFIX>_MODEL`, `_UPLOAD`, `_DATASET` and `_DATASET_GO`.
    """
    from frontend.settings import get_settings

    return [
        field(
            "Model",
            dcc.Input(
                id=getattr(ids, f"{id_prefix}_MODEL"),
                value=model or get_settings().default_model,
                type="text",
                debounce=True,
                className="input",
            ),
            class_name=model_width,
        ),
        dcc.Upload(
            html.Div([f"Drop {upload_text} or ", html.A("choose a file")]),
            id=getattr(ids, f"{id_prefix}_UPLOAD"),
            className="upload",
            accept="image/*",
            multiple=False,
        ),
        field(
            "or built-in scenes",
            dcc.Input(id=getattr(ids, f"{id_prefix}_DATASET"), value=dataset, type="text", className="input"),
            class_name="w-200",
        ),
        html.Button("Run", id=getattr(ids, f"{id_prefix}_DATASET_GO"), className="button"),
    ]
