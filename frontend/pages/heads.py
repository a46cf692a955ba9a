"""`/heads`: the heads overview, the paper's views B (importance), C (strength) and D (patterns).

Every view shows all L×H heads; clicking a head in any of them selects it in all of them (a red
ring) and writes `layer`/`head` into the URL. Jobs: `hi` head-importance, `ap` attention-profile,
`pat` attention-patterns; each view waits for its own job and says so. The metric menu offers
the metrics the importance job has: a backbone's are task-free (how far its features move), and a
note says why the class-based ones are missing, or that they come from a linear probe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from dash import Input, Output, ctx, dcc, html, no_update

from frontend import figures as F
from frontend import ids
from frontend.api import ApiClient, ApiError
from frontend.components import card, page_header
from frontend.components import field as labelled
from frontend.objective import PROBE, Objective, available_metrics, class_notes, objective_of
from frontend.page import Graphs, ViewPage, Views
from frontend.results import Results, class_name
from frontend.state import METRICS, HeadsState, HeadState, head_from_click

GRAPHS: Graphs = (
    (ids.HEADS_IMPORTANCE, 5),
    (ids.HEADS_PROB_AFTER, 7),
    (ids.HEADS_ENTROPY, 4),
    (ids.HEADS_RINGS, 4),
    (ids.HEADS_ENTROPY_HIST, 4),
    (ids.HEADS_PATTERNS, 5),
    (ids.HEADS_PROTOTYPES, 7),
)

CLICKABLE = (ids.HEADS_IMPORTANCE, ids.HEADS_PROB_AFTER, ids.HEADS_ENTROPY, ids.HEADS_PATTERNS)
"""The views where a click selects a head."""


@dataclass
class Built(Views):
    """The figures of the page plus the image menu, the metrics the importance job has (and the one
    shown), and a one-line summary."""

    image_options: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    metric: str | None = None
    summary: list[Any] = field(default_factory=list)


PAGE = ViewPage(
    __name__, HeadsState, ids.HEADS, GRAPHS, Built, name="Heads", title="Heads · vitscope", order=1
)
build = PAGE.build


@PAGE.body
def body(state: HeadsState, built: Built) -> list[Any]:
    """Title and controls, the views, and the summary line."""
    controls = [
        labelled(
            "Metric",
            dcc.Dropdown(
                id=ids.HEADS_METRIC,
                options=metric_options(built),
                value=built.metric or state.metric,
                clearable=False,
            ),
            class_name="w-260",
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
    return [
        page_header(
            "Heads overview",
            "Which heads matter (B), where they look (C), what patterns they "
            "learn (D). Click any head to select it everywhere.",
            controls,
        ),
        PAGE.grid(built),
        card(html.Div(built.summary, id=ids.HEADS_SUMMARY), span=12, class_name="summary-card"),
    ]


def metric_options(built: Built) -> list[dict[str, str]]:
    """The metric menu: the metrics the importance job has (every one while it is not done)."""
    return [{"label": METRICS[name], "value": name} for name in built.metrics or METRICS]


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


@PAGE.prepare
def shown_metric(api: ApiClient, state: HeadsState) -> tuple[HeadsState, str | None]:
    """The link's metric when the finished importance job has it, else the job's first: the URL then
    says what the heatmap shows (a backbone's link asking for the accuracy drop shows a task-free one)."""
    if not state.hi:
        return state, None
    try:
        if api.job(state.hi).get("status") != "done":
            return state, None
        results = Results(api, state.hi)
        metrics = available_metrics(results.summary, results.names)
    except ApiError:
        return state, None
    return (state.replace(metric=metrics[0]) if metrics and state.metric not in metrics else state), None


@PAGE.select(
    *(Input(ids.graph(name), "clickData") for name in CLICKABLE),
    Input(ids.HEADS_METRIC, "value"),
    Input(ids.HEADS_IMAGE, "value"),
    Input(ids.HEADS_QUERY, "value"),
)
def select(state: HeadsState, *values: Any) -> HeadsState | None:
    """Fold a click or a menu change into the page state (and so into the URL)."""
    *_, metric, image, q = values
    if isinstance(ctx.triggered_id, dict):
        head = head_from_click(ctx.triggered[0]["value"])
        return state.replace(layer=head[0], head=head[1]) if head is not None else None
    return state.replace(
        metric=metric or state.metric, image=state.image if image is None else int(image), q=q or state.q
    )


@PAGE.render(
    Output(ids.HEADS_IMAGE, "options"),
    Output(ids.HEADS_METRIC, "options"),
    Output(ids.HEADS_METRIC, "value"),
    Output(ids.HEADS_SELECTION, "children"),
    Output(ids.HEADS_SUMMARY, "children"),
)
def render(state: HeadsState, built: Built) -> tuple[Any, ...]:
    """The image and metric menus (kept while the importance job runs), the selection caption and
    the summary."""
    return (
        built.image_options or no_update,
        metric_options(built) if built.metrics else no_update,
        built.metric or no_update,
        selection_caption(state),
        built.summary,
    )


# -- drawing the views ------------------------------------------------------------------------------


def _clamp(state: HeadsState, shape: tuple[int, ...]) -> tuple[int, int]:
    return min(state.layer, shape[0] - 1), min(state.head, shape[1] - 1)


@PAGE.part("hi", (ids.HEADS_IMPORTANCE, ids.HEADS_PROB_AFTER))
def _importance(results: Results, state: HeadsState, built: Built) -> None:
    summary = results.summary
    objective = objective_of(summary)
    built.metrics = available_metrics(summary, results.names)
    metric = state.metric if state.metric in built.metrics or not built.metrics else built.metrics[0]
    built.metric = metric
    values = results.optional(metric)
    selected = _clamp(state, values.shape) if values is not None else None
    built.figures[ids.HEADS_IMPORTANCE] = (
        F.importance_heatmap(values, METRICS[metric], selected)
        if values is not None
        else F.empty_figure(f"This job has no “{METRICS[metric]}” (was it computed?)")
    )
    _draw_after_pruning(results, summary, objective, state, built)
    built.notes += class_notes(
        objective,
        (ids.HEADS_NO_CLASSIFIER, ids.HEADS_PROBE),
        "class-based metrics need a classifier or labelled images for a probe; "
        "the views show task-free metrics instead",
    )
    built.summary.append(_importance_summary(summary, objective))


AFTER_PRUNING = {
    "prob_after": ("probability", "Probability after pruning each head"),
    "cls_cosine_after": ("cosine to unpruned CLS", "CLS embedding cosine after pruning each head"),
}
"""The per-image line of the view, by array: a class probability, else (a backbone's) the cosine of
the final CLS embedding to the unpruned one."""


def _draw_after_pruning(
    results: Results, summary: dict[str, Any], objective: Objective, state: HeadsState, built: Built
) -> None:
    """The line of one image's value after pruning each head, and the image menu."""
    name = next((n for n in AFTER_PRUNING if results.optional(n) is not None), None)
    if name is None:
        built.figures[ids.HEADS_PROB_AFTER] = F.empty_figure("This job has no values after pruning.")
        return
    after = results.array(name)  # (N, L, H)
    labels = results.optional("labels")
    # a backbone's predictions come from no head at all: they are not shown
    predictions = results.optional("predictions") if objective.has_classes else None
    image = min(state.image, len(after) - 1)
    base = results.optional("prob_base") if name == "prob_after" else None
    value_label, title = AFTER_PRUNING[name]
    built.figures[ids.HEADS_PROB_AFTER] = F.prob_after_line(
        after[image],
        float(base[image]) if base is not None else None,
        _clamp(state, after.shape[1:]),
        _image_label(summary, labels, predictions, image),
        value_label,
        title,
    )
    built.image_options = [
        {"label": _image_label(summary, labels, predictions, i), "value": i} for i in range(len(after))
    ]


def _image_label(
    summary: dict[str, Any], labels: np.ndarray | None, predictions: np.ndarray | None, image: int
) -> str:
    parts = [f"#{image}"]
    if labels is not None and labels[image] >= 0:
        parts.append(class_name(summary, int(labels[image])))
    if predictions is not None:
        parts.append(f"→ {class_name(summary, int(predictions[image]))}")
    return " ".join(parts)


def _importance_summary(summary: dict[str, Any], objective: Objective) -> html.Span:
    """Accuracy (a probe's counts the images it was fitted on, so it says so) and Taylor's Spearman."""
    bits = []
    if summary.get("accuracy") is not None:
        whose = "probe accuracy (its training images included)" if objective.name == PROBE else "accuracy"
        bits.append(f"{whose} {float(summary['accuracy']):.3f}")
    if summary.get("spearman") is not None:
        bits.append(f"Taylor vs exact Spearman ρ {float(summary['spearman']):.3f}")
    return html.Span(" · ".join(bits) or "", className="summary-bit")


@PAGE.part("ap", (ids.HEADS_ENTROPY, ids.HEADS_RINGS, ids.HEADS_ENTROPY_HIST))
def _profile(results: Results, state: HeadsState, built: Built) -> None:
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


@PAGE.part("pat", (ids.HEADS_PATTERNS, ids.HEADS_PROTOTYPES))
def _patterns(results: Results, state: HeadsState, built: Built) -> None:
    q = state.q
    head_points = results.array(f"head_points_{q}")  # (L·H, 2)
    n_heads = _n_heads(results)
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


def _n_heads(results: Results) -> int:
    """Heads per layer of the model the patterns job ran on: its summary's `model` block, else
    (results stored before that block) the summary's own `heads`."""
    model = results.model
    return model.heads if model else int(results.summary.get("heads") or 1)
