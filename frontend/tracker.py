"""The job tracker every page shares: the URL <-> state store, polling, progress, forgotten jobs.

A page keeps its state (a `PageState`) in a dcc.Store. The tracker writes the state back to the
URL (dcc.Location with `refresh=False`, so the page is not rebuilt), polls the jobs the state
names until they settle, publishes the ids of finished jobs in a `ready` store (pages redraw when
it changes), and offers to recompute jobs the API does not know when the link says how. The cancel
button on a queued or running job's progress row (`components.progress_row`) is handled here once
for every page: it asks the API to cancel the job, and the next poll shows it `cancelled`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dash import MATCH, Input, Output, State, callback, clientside_callback, dcc, html, no_update

from frontend import ids
from frontend.api import ApiClient, ApiError, JobRecord, get_client
from frontend.components import notice, progress_row, short_id
from frontend.settings import get_settings
from frontend.state import PageState, data_to_inputs
from vitscope.contracts import kinds

HIDDEN = {"display": "none"}
SETTLED = ("done", "failed", "cancelled")
"""Statuses a job leaves only when it is submitted again: nothing to poll for."""

RebuildParams = Callable[[Any, str], dict[str, Any]]
"""(page state, URL key) -> the params of the job to submit for that key when it is missing."""


@dataclass
class JobsView:
    """What the API said about a page's jobs: records by URL key, unknown ones, or why it failed."""

    records: dict[str, JobRecord] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def settled(self) -> bool:
        """True when nothing is left to wait for (every job done, failed, cancelled or unknown)."""
        return self.error is None and all(r.get("status") in SETTLED for r in self.records.values())

    @property
    def clicks_only(self) -> bool:
        """True when every job still pending is an interactive kind's (a click's light work)."""
        pending = [r for r in self.records.values() if r.get("status") not in SETTLED]
        return bool(pending) and all(_interactive(str(r.get("kind"))) for r in pending)

    def poll_ms(self) -> int:
        """How soon to poll again: quickly while only a click's light jobs run, else the usual period."""
        settings = get_settings()
        return settings.frontend_click_poll_ms if self.clicks_only else settings.poll_ms

    @property
    def done_ids(self) -> list[str]:
        """Ids of the finished jobs, sorted (a stable value for the `ready` store)."""
        return sorted(str(r["id"]) for r in self.records.values() if r.get("status") == "done")

    def is_done(self, key: str) -> bool:
        """True when the job under URL key `key` has finished."""
        return self.records.get(key, {}).get("status") == "done"


def _interactive(kind: str) -> bool:
    declared = kinds.all_kinds().get(kind)
    return declared is not None and declared.interactive


def poll_jobs(api: ApiClient, job_ids: dict[str, str]) -> JobsView:
    """Ask the API for each job's record; unknown ids are `missing`, an outage is `error`."""
    view = JobsView()
    for key, job_id in job_ids.items():
        try:
            view.records[key] = api.job(job_id)
        except ApiError as exc:
            if not exc.not_found:
                view.error = str(exc)
                return view
            view.missing[key] = job_id
    return view


def can_rebuild(state: PageState, view: JobsView) -> bool:
    """True when some job is missing and the link carries the kind, model and data to recompute it."""
    inputs = data_to_inputs(state.data) if state.data else None
    kinds_known = all(state.kind_of(key) for key in view.missing)
    return bool(view.missing) and kinds_known and bool(state.model) and inputs is not None


def progress_children(view: JobsView, state: PageState) -> list[Any]:
    """Notices and progress bars for the page's jobs (nothing once every job is done)."""
    if view.error:
        return [notice(view.error, "error")]
    out: list[Any] = []
    for key, job_id in view.missing.items():
        kind = state.kind_of(key) or "analysis"
        hint = (
            "Press “Compute it” to run it again from the model and data in this link."
            if can_rebuild(state, view)
            else "This link does not say which model and data to recompute it from."
        )
        out.append(
            notice(
                f"Unknown job {short_id(job_id)} ({kind}): this API has no such job (it may have expired "
                f"or the link comes from another server). {hint}",
                "warn",
                [dcc.Link("Go home", href="/", className="button button-ghost")],
            )
        )
    # a click's light jobs show their progress in the graphs they draw (no rows that come and go per
    # click); only their failures get a row
    shown = {
        k: r
        for k, r in view.records.items()
        if not _interactive(str(r.get("kind"))) or r.get("status") == "failed"
    }
    if any(r.get("status") != "done" for r in shown.values()):
        out += [progress_row(str(r.get("kind") or state.kind_of(k) or k), r) for k, r in shown.items()]
    return out


def tracker_layout(t: ids.Tracker, state: PageState, view: JobsView) -> list[Any]:
    """The tracker's components for a page's layout, initialised from the state and first poll."""
    problems = [notice("Link problems: " + "; ".join(state.problems), "warn")] if state.problems else []
    return [
        dcc.Location(id=t.url, refresh=False),
        dcc.Store(id=t.remember),
        dcc.Store(id=t.state, data=state.to_store()),
        dcc.Store(id=t.ready, data=view.done_ids),
        dcc.Interval(id=t.interval, interval=view.poll_ms(), disabled=view.settled),
        html.Div(problems, id=t.notice, className="notices"),
        html.Div(progress_children(view, state), id=t.progress, className="progress-list"),
        html.Button(
            "Compute it",
            id=t.compute,
            className="button",
            style=None if can_rebuild(state, view) else HIDDEN,
        ),
    ]


def register_tracker(t: ids.Tracker, state_cls: type[PageState], rebuild: RebuildParams) -> None:
    """Register the tracker's callbacks for one page (call once, at import of the page module)."""

    @callback(Output(t.url, "search"), Input(t.state, "data"))
    def sync_url(data: dict[str, Any]) -> str:
        return state_cls.from_store(data).search()

    # the nav bar links back to the last view of each page (see app.py), so remember it here
    clientside_callback(
        """
        function(search) {
            if (search) { window.localStorage.setItem("vitscope:last:" + window.location.pathname, search); }
            return window.dash_clientside.no_update;
        }
        """,
        Output(t.remember, "data"),
        Input(t.url, "search"),
    )

    @callback(
        Output(t.progress, "children"),
        Output(t.interval, "disabled"),
        Output(t.interval, "interval"),
        Output(t.ready, "data"),
        Output(t.compute, "style"),
        Input(t.interval, "n_intervals"),
        Input(t.state, "data"),
        State(t.ready, "data"),
        prevent_initial_call=True,
    )
    def poll(_tick: int, data: dict[str, Any], ready: list[str]) -> tuple[Any, ...]:
        state = state_cls.from_store(data)
        view = poll_jobs(get_client(), state.job_ids())
        done = view.done_ids
        style = None if can_rebuild(state, view) else HIDDEN
        changed = done if done != ready else no_update
        return progress_children(view, state), view.settled, view.poll_ms(), changed, style

    @callback(
        Output(t.state, "data", allow_duplicate=True),
        Output(t.notice, "children"),
        Input(t.compute, "n_clicks"),
        State(t.state, "data"),
        prevent_initial_call=True,
    )
    def compute(_clicks: int, data: dict[str, Any]) -> tuple[Any, Any]:
        state = state_cls.from_store(data)
        api = get_client()
        try:
            view = poll_jobs(api, state.job_ids())
            changes = resubmit(api, state, view, rebuild)
        except ApiError as exc:
            return no_update, notice(f"Could not recompute: {exc}")
        if not changes:
            return no_update, notice("Nothing to recompute.", "info")
        message = ", ".join(f"{state.kind_of(k)} → {short_id(v)}" for k, v in changes.items())
        return state.replace(**changes).to_store(), notice(f"Submitted {message}.", "ok")


@callback(
    Output({"type": ids.JOB_CANCEL, "job": MATCH}, "children"),
    Output({"type": ids.JOB_CANCEL, "job": MATCH}, "disabled"),
    Output({"type": ids.JOB_CANCEL, "job": MATCH}, "title"),
    Input({"type": ids.JOB_CANCEL, "job": MATCH}, "n_clicks"),
    State({"type": ids.JOB_CANCEL, "job": MATCH}, "id"),
    prevent_initial_call=True,
)
def cancel_job(clicks: int | None, button: dict[str, str]) -> tuple[Any, ...]:
    """Cancel the job of a progress row's button; the row itself changes at the next poll."""
    if not clicks:
        return no_update, no_update, no_update
    try:
        get_client().cancel(button["job"])
    except ApiError as exc:
        return "Cancel failed", False, str(exc)
    return "Cancelling…", True, "the worker stops at its next batch"


def resubmit(api: ApiClient, state: PageState, view: JobsView, rebuild: RebuildParams) -> dict[str, str]:
    """Submit every missing job again from the link's model and data; returns URL key -> new id."""
    if not can_rebuild(state, view):
        return {}
    inputs = data_to_inputs(state.data or "") or {}
    changes = {}
    for key in view.missing:
        record = api.submit(str(state.kind_of(key)), str(state.model), inputs, rebuild(state, key))
        changes[key] = str(record["id"])
    return changes
