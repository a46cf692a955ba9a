"""Pages against the fake API: every view gets drawn from the contract's result names, jobs are
derived and tracked, and every callback is wired to components that exist."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from dash import Dash, html

from frontend import ids
from frontend.api import ApiClient
from frontend.state import CamState, HeadsState, HeadState, JobState, ScanpathState
from frontend.tracker import can_rebuild, poll_jobs, progress_children, resubmit
from vitscope.contracts import kinds

DATA = {"dataset": "synthscenes:6:seed=0"}


def submit(api: ApiClient, kind: str, params: dict[str, Any] | None = None) -> str:
    return str(api.submit(kind, "demo", DATA, params or {})["id"])


def drawn(fig: go.Figure) -> bool:
    """True when the figure shows data rather than a placeholder message."""
    return len(fig.data) > 0


def test_heads_overview_draws_every_view_from_finished_jobs(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import heads

    state = HeadsState(
        hi=submit(api, "head-importance"),
        ap=submit(api, "attention-profile"),
        pat=submit(api, "attention-patterns"),
        layer=1,
        head=3,
    )
    built = heads.build(api, state, set(state.job_ids().values()))
    assert all(drawn(built.figure(name)) for name, _ in heads.GRAPHS)
    assert len(built.image_options) == 6 and built.image_options[1]["label"].startswith("#1 square")
    cls = heads.build(api, state.replace(q="cls"), set(state.job_ids().values()))
    assert "CLS" in cls.figure(ids.HEADS_PATTERNS).layout.title.text


def test_heads_overview_says_which_job_it_waits_for(dash_app: Dash, api: ApiClient, hold: Any) -> None:
    from frontend.pages import heads

    state = HeadsState(hi=submit(api, "head-importance"), ap=None, pat=submit(api, "attention-patterns"))
    hold(state.pat)
    built = heads.build(api, state, {state.hi or ""})
    assert drawn(built.figure(ids.HEADS_IMPORTANCE))
    assert "No attention-profile job" in built.figure(ids.HEADS_ENTROPY).layout.annotations[0].text
    assert (
        "Waiting for the attention-patterns job"
        in built.figure(ids.HEADS_PATTERNS).layout.annotations[0].text
    )


def test_head_detail_derives_light_jobs_for_the_selection(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import head

    base = HeadState(
        hi=submit(api, "head-importance"),
        pat=submit(api, "attention-patterns"),
        layer=2,
        head=1,
        image=3,
        query=5,
    )
    derived, problem = head.derive(api, base)
    assert problem is None and (derived.hi, derived.pat) == (base.hi, base.pat)  # the overview stays
    assert derived.model == "demo" and derived.data == "synthscenes:6:seed=0"
    detail, pruning = api.job(derived.hd or ""), api.job(derived.hp or "")
    assert (detail["kind"], detail["params"]["image"], detail["params"]["layer"]) == ("head-detail", 3, None)
    assert (pruning["kind"], pruning["params"]["layer"], pruning["params"]["head"]) == ("head-pruning", 2, 1)
    again, _ = head.derive(api, derived.replace(query=7))
    assert (again.hd, again.hp) == (derived.hd, derived.hp)  # another query patch needs no job
    other, _ = head.derive(api, derived.replace(layer=0, head=3))
    assert other.hd == derived.hd and other.hp != derived.hp  # another head: the image's job serves it
    built = head.build(api, derived, set(derived.job_ids().values()))
    assert all(drawn(built.figure(name)) for name, _ in head.GRAPHS)
    assert built.dims == (3, 4)
    overlay = built.figure(ids.HEAD_OVERLAY)
    assert overlay.layout.shapes[0].x0 == pytest.approx(0.5)  # query 5 on a 4x4 grid is (1, 1)


def test_head_detail_fetches_the_slice_it_draws(dash_app: Dash, api: ApiClient, fake_app: Any) -> None:
    from frontend.pages import head

    state, _ = head.derive(api, HeadState(hi=submit(api, "head-importance"), layer=2, head=1, query=5))
    built = head.build(api, state, set(state.job_ids().values()))
    matrix = api.result(state.hd or "", "attention")[2, 1].astype(float)
    np.testing.assert_allclose(built.figure(ids.HEAD_MATRIX).data[0].z, matrix)
    np.testing.assert_allclose(built.figure(ids.HEAD_OVERLAY).data[1].z, matrix[1 + 5, 1:].reshape(4, 4))
    sliced = [at for job, name, at in fake_app.state.slices if job == state.hd and name == "attention"]
    assert (2, 1) in sliced


def test_cam_page_names_real_layers_and_shows_top5(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import cam

    state = CamState(job=submit(api, "eigencam"), layer=1)
    built = cam.build(api, state, {state.job or ""})
    assert built.layer_numbers == [0, 1, 2] and built.layer == 1
    assert [t.type for t in built.figure(ids.CAM_OVERLAY).data] == ["image", "heatmap"]
    assert list(built.figure(ids.CAM_TOP5).data[0].y)[-1] == "class 0"


def test_scanpath_page_draws_editable_boxes_and_the_target(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import scanpath

    state = ScanpathState(job=submit(api, "scanpath"))
    built = scanpath.build(api, state, {state.job or ""})
    fig = built.figure(ids.SCAN_FIGURE)
    assert len(fig.layout.shapes) == 4 and fig.layout.shapes[3].line.width == 3  # summary target = 3


def test_tracker_reports_unknown_jobs_and_recomputes_them(api: ApiClient) -> None:
    state = HeadsState(hi="f" * 24, model="demo", data="synthscenes:6:seed=0")
    view = poll_jobs(api, state.job_ids())
    assert view.missing == {"hi": "f" * 24} and view.settled
    assert can_rebuild(state, view)
    text = str(progress_children(view, state))
    assert "Unknown job" in text and "Compute it" in text
    changes = resubmit(api, state, view, lambda _state, _key: {})
    assert changes["hi"] == submit(api, "head-importance")
    assert not can_rebuild(HeadsState(hi="f" * 24), view)


def test_home_offers_every_declared_kind_with_its_title_and_help(
    dash_app: Dash, extra_kind: kinds.Kind
) -> None:
    from frontend.pages import home

    [checklist, _launch] = home._kinds_form()
    launchable = [name for name in kinds.names() if not kinds.get(name).interactive]
    assert [o["value"] for o in checklist.options] == launchable and "token-norms" in launchable
    assert {"head-detail", "head-pruning"} <= set(kinds.names()) - set(launchable)  # a page's per-click work
    assert checklist.value == ["head-importance", "attention-profile", "attention-patterns", "eigencam"]
    label = str(checklist.options[-1]["label"])
    assert "Token norms" in label and "token-norms" in label and extra_kind.help in label
    assert "synthsearch" in str(checklist.options[launchable.index("scanpath")]["label"])


def test_job_page_lists_any_kinds_record_summary_and_declared_arrays(
    dash_app: Dash, api: ApiClient, extra_kind: kinds.Kind, hold: Any
) -> None:
    from frontend.pages import job

    state = JobState(job=submit(api, "token-norms"), kind="token-norms")
    hold(state.job)
    waiting = job.build(api, state, set())
    assert "Waiting for the token-norms job" in str(job.content(waiting))
    text = str(job.build(api, state, {state.job or ""}).content)
    for expected in ("norms", "(N, L, T)", "(6, 3, 17)", "uint8", "patches above the median (optional)"):
        assert expected in text, expected
    assert "mean_norm" in text and "Token norms" in text
    assert "No job in this link" in str(job.content(job.build(api, JobState(), set())))


def test_a_forgotten_job_on_the_job_page_is_recomputed_from_its_link(api: ApiClient) -> None:
    state = JobState(job="f" * 24, kind="eigencam", model="demo", data="synthscenes:6:seed=0")
    view = poll_jobs(api, state.job_ids())
    assert can_rebuild(state, view) and not can_rebuild(state.replace(kind=None), view)
    assert resubmit(api, state, view, lambda _state, _key: {})["job"] == submit(api, "eigencam")


def test_nav_bar_lists_the_registered_pages_in_order(dash_app: Dash) -> None:
    from frontend.app import nav_pages

    names = ["Home", "Heads", "Head", "CAM", "Scanpath"]
    assert nav_pages() == list(zip(names, ["/", "/heads", "/head", "/cam", "/scanpath"], strict=True))


def test_tracker_reports_an_unreachable_api() -> None:
    view = poll_jobs(ApiClient("http://127.0.0.1:9/api/v1", timeout_s=1), {"job": "a" * 24})
    assert view.error and "Cannot reach" in view.error and not view.settled


def _component_ids(component: Any, found: set[str]) -> set[str]:
    if isinstance(component, list | tuple):
        for child in component:
            _component_ids(child, found)
    elif hasattr(component, "to_plotly_json"):
        cid = getattr(component, "id", None)
        if isinstance(cid, str):
            found.add(cid)
        _component_ids(getattr(component, "children", None), found)
    return found


def test_every_callback_talks_to_components_that_exist(dash_app: Dash) -> None:
    import dash

    from frontend.app import shell

    layouts: list[Any] = [shell()]
    layouts += [page["layout"]() for page in dash.page_registry.values()]
    known = _component_ids(
        html.Div(layouts), {"_pages_location", "_pages_content", "_pages_store", "_pages_dummy"}
    )
    graph_names = {
        name
        for module in ("heads", "head", "cam", "scanpath")
        for name, _ in __import__(f"frontend.pages.{module}", fromlist=["GRAPHS"]).GRAPHS
    }
    missing = set()
    callbacks = dash._callback.GLOBAL_CALLBACK_LIST
    assert len(callbacks) > 20
    for callback in callbacks:
        for dep in [*callback["inputs"], *callback["state"]]:
            cid = dep["id"]
            if cid.startswith("{"):
                continue
            if cid not in known:
                missing.add(cid)
        for output in callback["output"].split("..."):
            cid = output.strip(".").rsplit(".", 1)[0].split("@")[0]
            if cid and not cid.startswith("{") and cid not in known:
                missing.add(cid)
    assert not missing, f"callbacks name components no layout has: {sorted(missing)}"
    assert ids.HEADS_IMPORTANCE in graph_names


def test_a_queued_or_running_job_row_has_a_cancel_button_and_a_settled_one_none() -> None:
    from frontend.components import progress_row

    def buttons(status: str, **record: Any) -> list[Any]:
        row = progress_row("eigencam", {"id": "j" * 24, "status": status, "progress": 0.5, **record})
        return [c for c in row.children if isinstance(c, html.Button)]

    [button] = buttons("running")
    assert button.id == {"type": ids.JOB_CANCEL, "job": "j" * 24} and button.children == "Cancel"
    assert len(buttons("queued")) == 1 == len(buttons("running", may_delete=True))
    assert buttons("done") == buttons("failed") == buttons("cancelled") == []
    # a collaborator's view of someone else's job (authentication on): nothing to click that would be refused
    assert buttons("running", may_delete=False) == buttons("queued", may_delete=False) == []


def test_a_cancelled_job_is_settled_and_stops_the_polling() -> None:
    from frontend.tracker import JobsView

    assert JobsView(records={"hi": {"id": "x", "status": "cancelled"}}).settled
    assert not JobsView(records={"hi": {"id": "x", "status": "running"}}).settled


def test_the_tracker_polls_quickly_while_only_a_clicks_light_jobs_run(dash_app: Dash) -> None:
    from frontend.settings import get_settings
    from frontend.tracker import JobsView

    settings = get_settings()
    light = {"id": "a" * 24, "kind": "head-pruning", "status": "running", "progress": 0.1, "message": ""}
    heavy = {"id": "b" * 24, "kind": "head-importance", "status": "running", "progress": 0.1, "message": ""}
    clicks = JobsView(records={"hp": light})
    assert clicks.clicks_only and clicks.poll_ms() == settings.frontend_click_poll_ms
    assert progress_children(clicks, HeadState()) == []  # its graphs say it is computing: no row per click
    both = JobsView(records={"hp": light, "hi": heavy})
    assert not both.clicks_only and both.poll_ms() == settings.poll_ms
    assert len(progress_children(both, HeadState())) == 1  # the dataset-wide job's row only
    failed = JobsView(records={"hp": {**light, "status": "failed", "error": "layer 9 is out of range"}})
    assert "out of range" in str(progress_children(failed, HeadState()))
