"""The skeleton every view page shares: URL -> state -> jobs -> views, and the callbacks around it.

A view page (`/heads`, `/head`, `/cam`, `/scanpath`, `/job`) declares one `ViewPage`: its state
class, its tracker ids, its graphs, and one `part` per job it shows that draws that job's graphs
once it is done. The helper registers the Dash page and the job tracker, builds the views for a
state (saying in each graph why it is empty while its job is absent, running or unreadable), and
registers the two callbacks every page has: `select` folds controls and clicks into the state
(and so the URL), `render` redraws the graphs and the page's other outputs for a new state or a
finished job. A part may hide a graph its job has nothing for (a backbone's top-5: no empty panel)
and leave a note saying why; the helper hides the card and shows the notes above the grid.

`render` sends only the graphs whose part changed: each part has a signature (its job, whether it
could draw, and the state fields it `reads`), the browser keeps the signatures of what it shows
(the tracker's `drawn` store), and a part whose signature is unchanged keeps its graphs as drawn.
A part may give a figure as a zero-argument callable: it is built only when it is sent, so a job
finishing elsewhere on the page, or a click another part does not read, costs neither building
nor redrawing it.
A page module keeps only what is its own: the layout body, the drawing, the menus.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, callback, dcc, html, no_update
from dash.dependencies import DashDependency

from frontend import ids
from frontend.api import ApiClient, ApiError, get_client
from frontend.components import graph_card, notice, short_id
from frontend.figures import empty_figure
from frontend.results import Results
from frontend.state import PageState, with_source
from frontend.tracker import poll_jobs, register_tracker, tracker_layout

Graphs = tuple[tuple[str, int], ...]
"""(graph name, width in twelfths) of each graph of a page, in layout order."""
Figure: TypeAlias = go.Figure | Callable[[], go.Figure]
"""A graph's figure, or what builds it when it is sent."""


@dataclass
class Views:
    """What a page's build makes: its figures by graph name (or what builds them), and why each job's
    part did not draw (by URL key); the graphs a job has nothing for (their cards are hidden, not
    left empty) and the notes saying why; each part's signature (by URL key, see `Part.signature`).
    Pages subclass it for their menus and captions."""

    figures: dict[str, Figure] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)
    notes: list[Any] = field(default_factory=list)
    signatures: dict[str, str] = field(default_factory=dict)

    def figure(self, name: str) -> go.Figure:
        """The figure of graph `name`, built now if it was given as a callable."""
        made = self.figures[name]
        return made() if callable(made) else made

    def placeholders(self, names: Iterable[str], message: str, replace: bool = False) -> None:
        """Give each graph in `names` an empty figure saying `message` (only those without one, unless `replace`)."""
        for name in names:
            if replace or name not in self.figures:
                self.figures[name] = empty_figure(message)


S = TypeVar("S", bound=PageState)
V = TypeVar("V", bound=Views)
Draw = Callable[[Results, S, V], None]
ABSENT = "No {kind} job in this link: launch one from Home."
WAITING = "Waiting for the {kind} job {short} …"


@dataclass(frozen=True)
class Part(Generic[S, V]):
    """One job's share of a page: its URL key, the graphs it draws, and what they say meanwhile.

    `absent` and `waiting` are format strings over `kind`, `short` (the short job id) and `state`.
    `reads`: the state fields its graphs depend on besides its job (None: the whole state).
    """

    key: str
    graphs: tuple[str, ...]
    draw: Draw[S, V]
    absent: str = ABSENT
    waiting: str = WAITING
    reads: tuple[str, ...] | None = None

    def signature(self, state: S, message: str | None) -> str:
        """What this part's graphs show, as a string: its job id, why it did not draw (None: it drew)
        and the state fields it reads. Equal signatures mean equal graphs (a finished job's results
        never change)."""
        read = state.to_store() if self.reads is None else {name: getattr(state, name) for name in self.reads}
        return json.dumps([state.job_ids().get(self.key), message, read], sort_keys=True, default=str)

    def message(self, state: S, done: set[str]) -> str | None:
        """Why this part cannot draw yet (no job in the link, or not finished); None when it can."""
        job_id = state.job_ids().get(self.key)
        kind = state.kind_of(self.key) or "analysis"
        if not job_id:
            return self.absent.format(kind=kind, state=state)
        if job_id not in done:
            return self.waiting.format(kind=kind, short=short_id(job_id), state=state)
        return None


class ViewPage(Generic[S, V]):
    """One view page: registers its Dash page and job tracker, builds its views, wires its callbacks."""

    def __init__(
        self,
        module: str,
        state: type[S],
        tracker: ids.Tracker,
        graphs: Graphs,
        views: type[V],
        *,
        name: str,
        title: str,
        order: int,
        **page_options: Any,
    ) -> None:
        self.state, self.tracker, self.graphs, self.views = state, tracker, graphs, views
        self.parts: list[Part[S, V]] = []
        self._body: Callable[[S, V], list[Any]] = lambda _state, built: [self.grid(built)]
        self._prepare: Callable[[ApiClient, S], tuple[S, str | None]] | None = None
        self._finish: Callable[[ApiClient, S, set[str], V], None] | None = None
        self._rebuild: Callable[[S, str], dict[str, Any]] = lambda _state, _key: {}
        register_tracker(tracker, state, lambda s, key: self._rebuild(s, key))
        dash.register_page(
            module, path=state.path, name=name, title=title, order=order, layout=self.layout, **page_options
        )

    # -- what a page declares (decorators) ------------------------------------------------------

    def part(
        self,
        key: str,
        graphs: tuple[str, ...],
        *,
        absent: str | None = None,
        waiting: str | None = None,
        reads: tuple[str, ...] | None = None,
    ) -> Callable[[Draw[S, V]], Draw[S, V]]:
        """Declare the function that draws `graphs` from the finished job under URL key `key` (returned
        as is); `reads`: the state fields the graphs depend on (default: all)."""

        def declare(draw: Draw[S, V]) -> Draw[S, V]:
            self.parts.append(Part(key, graphs, draw, absent or ABSENT, waiting or WAITING, reads))
            return draw

        return declare

    def body(self, make: Callable[[S, V], list[Any]]) -> Callable[[S, V], list[Any]]:
        """Declare the page's own layout under the tracker (title, controls, `self.grid(built)`); returned as is."""
        self._body = make
        return make

    def prepare(
        self, step: Callable[[ApiClient, S], tuple[S, str | None]]
    ) -> Callable[[ApiClient, S], tuple[S, str | None]]:
        """Declare a step that adjusts a freshly parsed state, giving it and a problem to show (or None)."""
        self._prepare = step
        return step

    def finish(
        self, step: Callable[[ApiClient, S, set[str], V], None]
    ) -> Callable[[ApiClient, S, set[str], V], None]:
        """Declare a step run after every part, whatever they drew (menus from whichever job is done)."""
        self._finish = step
        return step

    def rebuild(self, params: Callable[[S, str], dict[str, Any]]) -> Callable[[S, str], dict[str, Any]]:
        """Declare the params a forgotten job is recomputed with (default: the kind's defaults)."""
        self._rebuild = params
        return params

    def select(self, *deps: DashDependency) -> Callable[[Callable[..., S | None]], Callable[..., S | None]]:
        """Register the callback that folds `deps` (Inputs, then States) into the state.

        The decorated function gets the current state and the values of `deps`, and returns the
        new state, or None to keep it; the URL follows through the tracker.
        """

        def register(fold: Callable[..., S | None]) -> Callable[..., S | None]:
            @callback(
                Output(self.tracker.state, "data"),
                *deps,
                State(self.tracker.state, "data"),
                prevent_initial_call=True,
            )
            def select(*args: Any) -> Any:
                *values, data = args
                state = self.state.from_store(data)
                changed = fold(state, *values)
                return no_update if changed is None or changed == state else changed.to_store()

            return fold

        return register

    def render(
        self, *outputs: Output
    ) -> Callable[[Callable[[S, V], tuple[Any, ...]]], Callable[[S, V], tuple[Any, ...]]]:
        """Register the callback that redraws the graphs whose part changed (the cards shown or
        hidden, and the notes, always), then `outputs`, for a new state or finished job.

        The decorated function gets the state and its built views and returns the values of `outputs`.
        """

        def register(extras: Callable[[S, V], tuple[Any, ...]]) -> Callable[[S, V], tuple[Any, ...]]:
            @callback(
                [*self._view_outputs(), Output(self.tracker.drawn, "data"), *outputs],
                Input(self.tracker.state, "data"),
                Input(self.tracker.ready, "data"),
                State(self.tracker.drawn, "data"),
                prevent_initial_call=True,
            )
            def render(data: dict[str, Any], ready: list[str], drawn: dict[str, str] | None) -> list[Any]:
                state = self.state.from_store(data)
                built = self.build(get_client(), state, set(ready or []))
                send = self.changed(built, drawn or {})
                return [*self._view_values(built, send), built.signatures, *extras(state, built)]

            return extras

        return register

    def _view_outputs(self) -> list[Output]:
        """Each graph's figure, then (on a page with graphs) each card's style and the notes."""
        figures = [Output(ids.graph(name), "figure") for name, _ in self.graphs]
        if not self.graphs:
            return figures
        cards = [Output(ids.card(name), "style") for name, _ in self.graphs]
        return [*figures, *cards, Output(self.tracker.notes, "children")]

    def changed(self, built: V, drawn: dict[str, str]) -> set[str]:
        """The graphs to send for `built` when the browser shows the parts `drawn` (signatures by URL
        key): all but those of parts whose signature is unchanged."""
        kept = {g for p in self.parts if drawn.get(p.key) == built.signatures.get(p.key) for g in p.graphs}
        return {name for name, _ in self.graphs} - kept

    def _view_values(self, built: V, send: set[str]) -> list[Any]:
        """The values of `_view_outputs` for `built`: the figures of the graphs in `send`, the others unchanged."""
        figures = [built.figure(name) if name in send else no_update for name, _ in self.graphs]
        if not self.graphs:
            return figures
        return [*figures, *(_card_style(name in built.hidden) for name, _ in self.graphs), built.notes]

    # -- what the helper does ------------------------------------------------------------------

    @property
    def slug(self) -> str:
        """The page's name in CSS classes: `heads` for `/heads`."""
        return self.state.path.strip("/") or "home"

    def layout(self, **query: Any) -> html.Div:
        """The page for a URL query: the tracker (first poll included), a problem if any, the body."""
        state = self.state.from_query(query)
        api = get_client()
        problem = None
        if self._prepare is not None:
            state, problem = self._prepare(api, state)
        view = poll_jobs(api, state.job_ids())
        state = with_source(state, next(iter(view.records.values()), None))
        built = self.build(api, state, set(view.done_ids))
        return html.Div(
            [
                *tracker_layout(self.tracker, state, view),
                dcc.Store(id=self.tracker.drawn, data=built.signatures),
                *([notice(problem)] if problem else []),
                *self._body(state, built),
            ],
            className=f"page page-{self.slug}",
        )

    def build(self, api: ApiClient, state: S, done: set[str]) -> V:
        """Every view of the page for `state` (`done`: ids of finished jobs); a graph whose job is
        absent, running or unreadable says so instead, one that was not drawn shows `…`.

        A part's job the tracker has not seen finish is asked about once more here: a click's light
        job often finishes between the tracker's poll and this build, and then draws now rather than
        one poll and one redraw later."""
        built = self.views()
        ids = state.job_ids()
        unseen = {p.key: ids[p.key] for p in self.parts if ids.get(p.key) and ids[p.key] not in done}
        done = done | set(poll_jobs(api, unseen).done_ids)  # a part whose job is missing says so itself
        for part in self.parts:
            message = part.message(state, done)
            if message is None:
                try:
                    part.draw(Results.of(api, state.job_ids()[part.key]), state, built)
                except ApiError as exc:
                    message = f"Could not load results: {exc}"
            if message is not None:
                built.messages[part.key] = message
                built.placeholders(part.graphs, message, replace=True)
                built.hidden.difference_update(part.graphs)  # a graph saying why it is empty is shown
            built.signatures[part.key] = part.signature(state, message)
        built.placeholders((name for name, _ in self.graphs), "…")
        if self._finish is not None:
            self._finish(api, state, done, built)
        return built

    def grid(self, built: V) -> html.Div:
        """The notes about the page's jobs, then its graphs as cards on the 12-column grid (the cards
        of graphs a job has nothing for are hidden)."""
        cards = [
            graph_card(name, built.figure(name), span, style=_card_style(name in built.hidden))
            for name, span in self.graphs
        ]
        return html.Div(
            [
                html.Div(built.notes, id=self.tracker.notes, className="notices"),
                html.Div(cards, className="grid"),
            ]
        )


def _card_style(hidden: bool) -> dict[str, str]:
    """The style of a graph's card: none when shown, `display: none` when hidden."""
    return {"display": "none"} if hidden else {}
