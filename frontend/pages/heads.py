"""`/heads`: the heads overview, the paper's views B (importance), C (strength) and D (patterns).

Every view shows all L×H heads; clicking a head in any of them selects it in all of them (a red
ring) and writes `layer`/`head` into the URL. Jobs: `hi` head-importance, `ap` attention-profile,
`pat` attention-patterns; each view waits for its own job and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dash
import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from frontend import figures as F
from frontend import ids
from frontend.api import ApiClient, ApiError, get_client
from frontend.components import card, graph_card, page_header
from frontend.components import field as labelled
from frontend.results import Results, class_name
from frontend.state import METRICS, HeadsState, HeadState, head_from_click, with_source
from frontend.tracker import poll_jobs, register_tracker, tracker_layout

T = ids.HEADS
GRAPHS: tuple[tuple[str, int], ...] = (
    (ids.HEADS_IMPORTANCE, 5),
    (ids.HEADS_PROB_AFTER, 7),
    (ids.HEADS_ENTROPY, 4),
    (ids.HEADS_RINGS, 4),
    (ids.HEADS_ENTROPY_HIST, 4),
    (ids.HEADS_PATTERNS, 5),
    (ids.HEADS_PROTOTYPES, 7),
)
Figures = dict[str, go.Figure]


def layout(**query: Any) -> html.Div:
    """The overview for the jobs and selection in the URL."""
    state = HeadsState.from_query(query)
    api = get_client()
    view = poll_jobs(api, state.job_ids())
    state = with_source(state, next(iter(view.records.values()), None))
    built = build(api, state, set(view.done_ids))
    controls = [
        labelled(
            "Metric",
            dcc.Dropdown(
                id=ids.HEADS_METRIC,
                options=[{"label": v, "value": k} for k, v in METRICS.items()],
                value=state.metric,
                clearable=False,
            ),
            class_name="w-220",
        ),
        labelled(
            "Image",
            dcc.Dropdown(id=ids.HEADS_IMAGE, options=built.image_options, value=state.image, clearable=False),
            class_name="w-260",
        ),
        labelled(
            "Queries",
            dcc.RadioItems(
                id=ids.HEADS_QUERY,
                options=[{"label": " patch", "value": "patch"}, {"label": " CLS", "value": "cls"}],
                value=state.q,
                inline=True,
            ),
        ),
        html.Div(selection_caption(state), id=ids.HEADS_SELECTION, className="selection"),
    ]
    return html.Div(
        [
            *tracker_layout(T, state, view),
            page_header(
                "Heads overview",
                "Which heads matter (B), where they look (C), what patterns they "
                "learn (D). Click any head to select it everywhere.",
                controls,
            ),
            html.Div(
                [graph_card(name, built.figures[name], span) for name, span in GRAPHS], className="grid"
            ),
            card(html.Div(built.summary, id=ids.HEADS_SUMMARY), span=12, class_name="summary-card"),
        ],
        className="page page-heads",
    )


dash.register_page(__name__, path="/heads", title="Heads · vitscope", name="Heads", order=1, layout=layout)


def selection_caption(state: HeadsState) -> list[Any]:
    """“L3 H2 selected” and a link to that head's detail page."""
    detail = HeadState(
        hi=state.hi,
        ap=state.ap,
        pat=state.pat,
        layer=state.layer,
        head=state.head,
        image=state.image,
        model=state.model,
        data=state.data,
    )
    return [
        html.Span(f"L{state.layer} H{state.head}", className="selected-head", id=ids.HEADS_SELECTED_TEXT),
        dcc.Link("Head detail →", href=detail.url(), id=ids.HEADS_DETAIL_LINK, className="button"),
    ]


def rebuild_params(state: HeadsState, key: str) -> dict[str, Any]:
    """A forgotten overview job is recomputed with default parameters."""
    return {}


register_tracker(T, HeadsState, rebuild_params)


@callback(
    Output(T.state, "data"),
    Input(ids.graph(ids.HEADS_IMPORTANCE), "clickData"),
    Input(ids.graph(ids.HEADS_PROB_AFTER), "clickData"),
    Input(ids.graph(ids.HEADS_ENTROPY), "clickData"),
    Input(ids.graph(ids.HEADS_PATTERNS), "clickData"),
    Input(ids.HEADS_METRIC, "value"),
    Input(ids.HEADS_IMAGE, "value"),
    Input(ids.HEADS_QUERY, "value"),
    State(T.state, "data"),
    prevent_initial_call=True,
)
def select(*args: Any) -> Any:
    """Fold a click or a menu change into the page state (and so into the URL)."""
    *_, metric, image, q, data = args
    state = HeadsState.from_store(data)
    trigger = ctx.triggered_id
    if isinstance(trigger, dict):
        head = head_from_click(ctx.triggered[0]["value"])
        if head is None or head == (state.layer, state.head):
            return no_update
        return state.replace(layer=head[0], head=head[1]).to_store()
    changed = state.replace(
        metric=metric or state.metric, image=state.image if image is None else int(image), q=q or state.q
    )
    return changed.to_store() if changed != state else no_update


@callback(
    [Output(ids.graph(name), "figure") for name, _ in GRAPHS],
    Output(ids.HEADS_IMAGE, "options"),
    Output(ids.HEADS_SELECTION, "children"),
    Output(ids.HEADS_SUMMARY, "children"),
    Input(T.state, "data"),
    Input(T.ready, "data"),
    prevent_initial_call=True,
)
def render(data: dict[str, Any], ready: list[str]) -> tuple[Any, ...]:
    """Redraw every view for the state (selection, metric, image, query type)."""
    state = HeadsState.from_store(data)
    built = build(get_client(), state, set(ready or []))
    options = built.image_options or no_update
    return (*[built.figures[name] for name, _ in GRAPHS], options, selection_caption(state), built.summary)


# -- building the views ---------------------------------------------------------------------------


@dataclass
class Built:
    """The figures of the page plus the image menu and a one-line summary."""

    figures: Figures = field(default_factory=dict)
    image_options: list[dict[str, Any]] = field(default_factory=list)
    summary: list[Any] = field(default_factory=list)


def build(api: ApiClient, state: HeadsState, done: set[str]) -> Built:
    """All views for `state`; a view whose job is absent, running or broken says so instead."""
    built = Built()
    for part in (_importance, _profile, _patterns):
        try:
            part(api, state, done, built)
        except ApiError as exc:
            _fill_missing(built, part, f"Could not load results: {exc}")
    for name, _ in GRAPHS:
        if name not in built.figures:
            built.figures[name] = F.empty_figure("…")
    return built


def _wait_message(job_id: str | None, done: set[str], kind: str) -> str | None:
    if not job_id:
        return f"No {kind} job in this link: launch one from Home."
    if job_id not in done:
        return f"Waiting for the {kind} job {job_id[:12]} …"
    return None


def _fill_missing(built: Built, part: Any, message: str) -> None:
    names = {
        _importance: (ids.HEADS_IMPORTANCE, ids.HEADS_PROB_AFTER),
        _profile: (ids.HEADS_ENTROPY, ids.HEADS_RINGS, ids.HEADS_ENTROPY_HIST),
        _patterns: (ids.HEADS_PATTERNS, ids.HEADS_PROTOTYPES),
    }[part]
    for name in names:
        built.figures[name] = F.empty_figure(message)


def _clamp(state: HeadsState, shape: tuple[int, ...]) -> tuple[int, int]:
    return min(state.layer, shape[0] - 1), min(state.head, shape[1] - 1)


def _importance(api: ApiClient, state: HeadsState, done: set[str], built: Built) -> None:
    wait = _wait_message(state.hi, done, "head-importance")
    if wait or state.hi is None:
        _fill_missing(built, _importance, wait or "")
        return
    results = Results.of(api, state.hi)
    summary = results.summary
    values = results.optional(state.metric)
    selected = _clamp(state, values.shape) if values is not None else None
    built.figures[ids.HEADS_IMPORTANCE] = (
        F.importance_heatmap(values, METRICS[state.metric], selected)
        if values is not None
        else F.empty_figure(f"This job has no “{METRICS[state.metric]}” (was it computed?)")
    )
    prob_after = results.optional("prob_after")
    labels = results.optional("labels")
    predictions = results.optional("predictions")
    if prob_after is not None:
        image = min(state.image, len(prob_after) - 1)
        base = results.optional("prob_base")
        built.figures[ids.HEADS_PROB_AFTER] = F.prob_after_line(
            prob_after[image],
            float(base[image]) if base is not None else None,
            _clamp(state, prob_after.shape[1:]),
            _image_label(summary, labels, predictions, image),
        )
        built.image_options = [
            {"label": _image_label(summary, labels, predictions, i), "value": i}
            for i in range(len(prob_after))
        ]
    built.summary.append(_importance_summary(summary))


def _image_label(
    summary: dict[str, Any], labels: np.ndarray | None, predictions: np.ndarray | None, image: int
) -> str:
    parts = [f"#{image}"]
    if labels is not None and labels[image] >= 0:
        parts.append(class_name(summary, int(labels[image])))
    if predictions is not None:
        parts.append(f"→ {class_name(summary, int(predictions[image]))}")
    return " ".join(parts)


def _importance_summary(summary: dict[str, Any]) -> html.Span:
    bits = []
    if "accuracy" in summary:
        bits.append(f"accuracy {float(summary['accuracy']):.3f}")
    if summary.get("spearman") is not None:
        bits.append(f"Taylor vs exact Spearman ρ {float(summary['spearman']):.3f}")
    return html.Span(" · ".join(bits) or "", className="summary-bit")


def _profile(api: ApiClient, state: HeadsState, done: set[str], built: Built) -> None:
    wait = _wait_message(state.ap, done, "attention-profile")
    if wait or state.ap is None:
        _fill_missing(built, _profile, wait or "")
        return
    results = Results.of(api, state.ap)
    cls = state.q == "cls"
    max_entropy = results.summary.get("max_entropy_cls" if cls else "max_entropy")
    entropy = results.array(f"entropy_{state.q}")
    selected = _clamp(state, entropy.shape)
    label = "CLS" if state.q == "cls" else "patch"
    built.figures[ids.HEADS_ENTROPY] = F.entropy_by_layer(entropy, max_entropy, selected, label)
    rings_patch, rings_cls = results.optional("ring_strength_patch"), results.optional("ring_strength_cls")
    built.figures[ids.HEADS_RINGS] = F.ring_bars(
        rings_patch[selected] if rings_patch is not None else None,
        rings_cls[selected] if rings_cls is not None else None,
        selected,
    )
    per_image = results.optional("entropy_per_image_cls" if cls else "entropy_per_image")
    built.figures[ids.HEADS_ENTROPY_HIST] = (
        F.entropy_histogram(per_image[:, selected[0], selected[1]], max_entropy, selected, label)
        if per_image is not None
        else F.empty_figure("No per-image entropy in this job.")
    )


def _patterns(api: ApiClient, state: HeadsState, done: set[str], built: Built) -> None:
    wait = _wait_message(state.pat, done, "attention-patterns")
    if wait or state.pat is None:
        _fill_missing(built, _patterns, wait or "")
        return
    results = Results.of(api, state.pat)
    q = state.q
    head_points = results.array(f"head_points_{q}")
    n_heads = _n_heads(api, state, len(head_points))
    n_layers = len(head_points) // n_heads
    selected = (min(state.layer, n_layers - 1), min(state.head, n_heads - 1))
    label = "CLS" if q == "cls" else "patch"
    built.figures[ids.HEADS_PATTERNS] = F.pattern_map(
        results.array(f"embedding_{q}"), head_points, n_heads, selected, label
    )
    mix = results.optional(f"head_mix_{q}")
    built.figures[ids.HEADS_PROTOTYPES] = F.prototypes_figure(
        results.array(f"prototypes_{q}"),
        mix[selected[0] * n_heads + selected[1]] if mix is not None else None,
    )


def _n_heads(api: ApiClient, state: HeadsState, n_points: int) -> int:
    """Heads per layer: from the other jobs' (L, H) arrays, else the patterns summary, else a square guess."""
    for job_id, name in ((state.ap, "entropy_patch"), (state.hi, "accuracy_drop")):
        if job_id:
            try:
                return int(api.result(job_id, name).shape[1])
            except ApiError:
                continue
    summary = api.summary(state.pat) if state.pat else {}
    if summary.get("heads"):
        return int(summary["heads"])
    root = int(np.sqrt(n_points))
    return root if root * root == n_points else n_points
