"""`/`: choose a model and data, launch analyses, follow recent jobs and open their views.

The form's model and data are in the URL (`?model=…&data=…`) so a setup can be shared; the
recent jobs list lives in the browser (localStorage), polled while any job is still running.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import dash
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from frontend import ids
from frontend.api import ApiError, JobRecord, get_client
from frontend.components import card, field, notice, page_header, progress_row, short_id
from frontend.launch import (
    dashboard_url,
    dataset_spec,
    launch,
    overview_url,
    own_family,
    upload_inputs,
    upload_zip,
)
from frontend.settings import get_settings
from frontend.state import HomeState, data_to_inputs, inputs_to_data
from frontend.tracker import SETTLED
from vitscope.contracts import kinds

MAX_RECENT = 40


def layout(**query: Any) -> html.Div:
    """The launch form (prefilled from the URL) and the recent jobs."""
    state = HomeState.from_query(query)
    inputs = data_to_inputs(state.data) if state.data else None
    return html.Div(
        [
            dcc.Location(id=ids.HOME.url, refresh=False),
            dcc.Store(id=ids.HOME_UPLOADED, data=inputs if inputs and "dataset" not in inputs else None),
            page_header(
                "Explore a Vision Transformer's heads",
                "Pick a model and images, launch analyses, open their views. Every view is a link.",
                [],
            ),
            html.Div(
                [
                    card(_model_form(state), span=4, title="1 · Model"),
                    card(_data_form(inputs), span=4, title="2 · Images"),
                    card(_kinds_form(), span=4, title="3 · Analyses"),
                ],
                className="grid",
            ),
            html.Div(id=ids.HOME_LAUNCH_NOTICE, className="notices"),
            card(
                [
                    html.Div(
                        [
                            html.Span("Recent jobs", className="card-title"),
                            html.Button("Clear list", id=ids.HOME_CLEAR, className="button button-ghost"),
                        ],
                        className="card-head",
                    ),
                    dcc.Interval(id=ids.HOME_JOBS_INTERVAL, interval=get_settings().poll_ms),
                    html.Div(id=ids.HOME_JOBS, className="jobs"),
                ],
                span=12,
            ),
        ],
        className="page page-home",
    )


dash.register_page(__name__, path="/", title="vitscope", name="Home", order=0, layout=layout)


def _model_form(state: HomeState) -> list[Any]:
    try:
        models = get_client().models()
        problem = None
    except ApiError as exc:
        models, problem = [], str(exc)
    options = [html.Option(value=str(m.get("spec")), label=str(m.get("description") or "")) for m in models]
    return [
        field(
            "Model spec",
            dcc.Input(
                id=ids.HOME_MODEL,
                value=state.model or get_settings().default_model,
                list="home-models",
                type="text",
                debounce=True,
                className="input",
            ),
            "demo, random:<family>-<size>, a Hugging Face id (google/vit-base-patch16-224) or a folder",
        ),
        html.Datalist(options, id="home-models"),
        html.Details(
            [
                html.Summary(f"Suggested models ({len(models)})"),
                html.Ul(
                    [
                        html.Li([html.Code(str(m.get("spec"))), " ", str(m.get("description") or "")])
                        for m in models
                    ],
                    className="model-list",
                ),
            ],
            className="model-details",
        ),
        *([notice(problem, "warn")] if problem else []),
    ]


def _data_form(inputs: dict[str, Any] | None) -> list[Any]:
    dataset = (inputs or {}).get("dataset") or "synthscenes:64:seed=0"
    parts = dataset.split(":")
    n = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 64
    seed = next((int(p[5:]) for p in parts if p.startswith("seed=") and p[5:].isdigit()), 0)
    source = "images" if inputs and "images" in inputs else "zip" if inputs and "zip" in inputs else "builtin"
    return [
        dcc.RadioItems(
            id=ids.HOME_SOURCE,
            value=source,
            className="radio-col",
            options=[
                {"label": " Built-in SynthScenes (labelled, with object boxes)", "value": "builtin"},
                {"label": " Uploaded images", "value": "images"},
                {"label": " Uploaded ImageFolder zip (one folder per class)", "value": "zip"},
            ],
        ),
        html.Div(
            [
                field(
                    "Images",
                    dcc.Input(
                        id=ids.HOME_SYNTH_N, type="number", min=1, max=100_000, value=n, className="input"
                    ),
                ),
                field(
                    "Seed",
                    dcc.Input(id=ids.HOME_SYNTH_SEED, type="number", min=0, value=seed, className="input"),
                ),
            ],
            className="row",
        ),
        dcc.Upload(
            html.Div(["Drop images or ", html.A("choose files")]),
            id=ids.HOME_UPLOAD_IMAGES,
            multiple=True,
            accept="image/*",
            className="upload",
        ),
        dcc.Upload(
            html.Div(["Drop a .zip or ", html.A("choose one")]),
            id=ids.HOME_UPLOAD_ZIP,
            multiple=False,
            accept=".zip,application/zip",
            className="upload",
        ),
        html.Div(_uploaded_text(inputs), id=ids.HOME_UPLOADED_LIST, className="uploaded"),
    ]


def default_kinds() -> list[str]:
    """The kinds the launch form starts with checked (`Kind.default_launch`), in declaration order."""
    return [kind.name for kind in kinds.all_kinds().values() if kind.default_launch]


def kind_option(kind: kinds.Kind) -> dict[str, Any]:
    """One launch checkbox: the kind's title, its API name and its help."""
    family = own_family(kind)
    note = f" (built-in scenes become {family} scenes)" if family else ""
    help_text = html.Span(f" — {kind.help}{note}", className="muted")
    return {
        "label": html.Span([html.B(f" {kind.title}"), " ", html.Code(kind.name), help_text]),
        "value": kind.name,
    }


def _kinds_form() -> list[Any]:
    return [
        dcc.Checklist(
            id=ids.HOME_KINDS,
            value=default_kinds(),
            className="radio-col",
            # an interactive kind is a page's per-click work (the head page's), not something to launch
            options=[kind_option(kind) for kind in kinds.all_kinds().values() if not kind.interactive],
        ),
        html.Button("Launch", id=ids.HOME_LAUNCH, className="button button-primary"),
    ]


def _uploaded_text(inputs: dict[str, Any] | None) -> str:
    if not inputs:
        return ""
    if inputs.get("images"):
        return f"{len(inputs['images'])} image(s) uploaded: " + ", ".join(
            short_id(i) for i in inputs["images"][:6]
        )
    if inputs.get("zip"):
        return f"zip {short_id(inputs['zip'])} uploaded" + (
            f" ({inputs['count']} images)" if inputs.get("count") else ""
        )
    return ""


def _form_inputs(
    source: str, n: int | None, seed: int | None, uploaded: dict[str, Any] | None
) -> dict[str, Any]:
    """The job inputs the form describes; ApiError when an upload is still missing."""
    if source == "builtin":
        return {"dataset": dataset_spec(n, seed)}
    if source == "images" and uploaded and uploaded.get("images"):
        return {"images": uploaded["images"]}
    if source == "zip" and uploaded and uploaded.get("zip"):
        return {"zip": uploaded["zip"]}
    raise ApiError("Upload the images (or the zip) first, or choose the built-in scenes.")


@callback(
    Output(ids.HOME.url, "search"),
    Input(ids.HOME_MODEL, "value"),
    Input(ids.HOME_SOURCE, "value"),
    Input(ids.HOME_SYNTH_N, "value"),
    Input(ids.HOME_SYNTH_SEED, "value"),
    Input(ids.HOME_UPLOADED, "data"),
)
def sync_url(model: str | None, source: str, n: int | None, seed: int | None, uploaded: Any) -> str:
    """Keep the form in the URL."""
    try:
        data = inputs_to_data(_form_inputs(source, n, seed, uploaded))
    except ApiError:
        data = None
    return HomeState(model=(model or "").strip() or None, data=data).search()


@callback(
    Output(ids.HOME_UPLOADED, "data"),
    Output(ids.HOME_UPLOADED_LIST, "children"),
    Output(ids.HOME_SOURCE, "value"),
    Input(ids.HOME_UPLOAD_IMAGES, "contents"),
    Input(ids.HOME_UPLOAD_ZIP, "contents"),
    State(ids.HOME_UPLOAD_IMAGES, "filename"),
    State(ids.HOME_UPLOAD_ZIP, "filename"),
    prevent_initial_call=True,
)
def upload(
    images: list[str] | None, archive: str | None, image_names: list[str] | None, archive_name: str | None
) -> tuple[Any, Any, Any]:
    """Send dropped files to the API as soon as they are dropped (errors show right there)."""
    api = get_client()
    try:
        if ctx.triggered_id == ids.HOME_UPLOAD_ZIP and archive:
            inputs = upload_zip(api, archive, archive_name)
            return inputs, _uploaded_text(inputs), "zip"
        if images:
            inputs = upload_inputs(api, images, image_names)
            return inputs, _uploaded_text(inputs), "images"
    except ApiError as exc:
        return no_update, notice(f"Upload failed: {exc}"), no_update
    return no_update, no_update, no_update


@callback(
    Output(ids.RECENT_JOBS, "data"),
    Output(ids.HOME_LAUNCH_NOTICE, "children"),
    Input(ids.HOME_LAUNCH, "n_clicks"),
    Input(ids.HOME_CLEAR, "n_clicks"),
    State(ids.HOME_MODEL, "value"),
    State(ids.HOME_SOURCE, "value"),
    State(ids.HOME_SYNTH_N, "value"),
    State(ids.HOME_SYNTH_SEED, "value"),
    State(ids.HOME_UPLOADED, "data"),
    State(ids.HOME_KINDS, "value"),
    State(ids.RECENT_JOBS, "data"),
    prevent_initial_call=True,
)
def launch_jobs(
    _launch: int | None,
    _clear: int | None,
    model: str | None,
    source: str,
    n: int | None,
    seed: int | None,
    uploaded: Any,
    kinds: list[str] | None,
    recent: list[dict[str, Any]] | None,
) -> tuple[Any, Any]:
    """Submit one job per chosen analysis and remember them in the browser."""
    # the output lives in the app shell, so Dash also calls this when the page's buttons first
    # appear (prevent_initial_call does not cover that case): act on real clicks only
    if not any(t.get("value") for t in ctx.triggered):
        return no_update, no_update
    if ctx.triggered_id == ids.HOME_CLEAR:
        return [], None
    if not kinds:
        return no_update, notice("Choose at least one analysis.", "warn")
    try:
        records = launch(get_client(), kinds, (model or "").strip(), _form_inputs(source, n, seed, uploaded))
    except ApiError as exc:
        return no_update, notice(f"Could not launch: {exc}")
    batch = f"{time.time():.3f}"
    entries = [{"id": r["id"], "kind": r.get("kind"), "batch": batch} for r in records]
    known = {e["id"] for e in entries}
    kept = [e for e in (recent or []) if e.get("id") not in known]
    links = (
        [dcc.Link("Open heads overview", href=url, className="button")]
        if (url := overview_url(records))
        else []
    )
    return (entries + kept)[:MAX_RECENT], notice(f"Launched {len(records)} job(s).", "ok", links)


@callback(
    Output(ids.HOME_JOBS, "children"),
    Output(ids.HOME_JOBS_INTERVAL, "disabled"),
    Input(ids.HOME_JOBS_INTERVAL, "n_intervals"),
    Input(ids.RECENT_JOBS, "data"),
)
def show_jobs(_tick: int | None, recent: list[dict[str, Any]] | None) -> tuple[Any, bool]:
    """The recent jobs, grouped by launch, with live progress and links to their views."""
    if not recent:
        return html.P("No jobs yet: launch some above.", className="muted"), True
    api = get_client()
    records: dict[str, JobRecord] = {}
    for entry in recent:
        try:
            records[entry["id"]] = api.job(entry["id"])
        except ApiError as exc:
            if not exc.not_found:
                return notice(str(exc)), False
    batches: dict[str, list[JobRecord]] = defaultdict(list)
    for entry in recent:
        if entry["id"] in records:
            batches[str(entry.get("batch"))].append(records[entry["id"]])
    settled = all(r.get("status") in SETTLED for r in records.values())
    return [_batch_block(batch) for batch in batches.values()], settled


def _batch_block(records: list[JobRecord]) -> html.Div:
    first = records[0]
    data = inputs_to_data(first.get("inputs")) or "uploaded images"
    overview = overview_url(records)
    head: list[Any] = [
        html.Span([html.Code(str(first.get("model"))), " on ", html.Code(data)], className="batch-title")
    ]
    if overview:
        head.append(dcc.Link("Heads overview →", href=overview, className="button button-small"))
    rows = [
        html.Div(
            [
                progress_row(str(r.get("kind")), r),
                dcc.Link("Open →", href=dashboard_url(r), className="job-open"),
            ],
            className="job-line",
        )
        for r in records
    ]
    return html.Div([html.Div(head, className="batch-head"), *rows], className="batch")
