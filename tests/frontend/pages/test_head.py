"""/head against the fake API: the page derives its light jobs from the selection, draws slices of
them, and submits nothing dataset-wide; a backbone's partial pruning shows the CLS cosine per mode,
its top-5 panel is gone and a note says why."""

from __future__ import annotations

from typing import Any

import numpy as np
from dash import Dash

from frontend import ids
from frontend.api import ApiClient
from frontend.state import HeadState
from tests.frontend.fake_api import BACKBONE
from tests.utils.components import find, text_of

DATA = {"dataset": "synthscenes:6:seed=0"}


def built_for(api: ApiClient, model: str, **params: Any) -> tuple[HeadState, Any]:
    from frontend.pages import head

    hi = str(api.submit("head-importance", model, DATA, params)["id"])
    state, _ = head.derive(api, HeadState(hi=hi, layer=1, head=2, mode=1))
    return state, head.build(api, state, set(state.job_ids().values()))


def test_a_backbone_prunes_by_the_cls_cosine_and_has_no_top5_panel(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import head

    state, built = built_for(api, BACKBONE, probe=False)
    assert built.dims == (3, 4)  # from the model block: there is no accuracy_drop to measure
    modes = built.figure(ids.HEAD_MODES)
    assert "CLS embedding cosine per mode" in modes.layout.title.text
    np.testing.assert_allclose(modes.data[0].y, api.result(state.hp or "", "cls_cosine"))
    assert built.hidden == {ids.HEAD_TOP5}
    assert find(head.body(state, built), ids.card(ids.HEAD_TOP5)).style == {"display": "none"}
    [note] = built.notes
    assert note.id == ids.HEAD_NO_CLASSIFIER
    assert f"No classifier: this model is a backbone ({BACKBONE})" in text_of(note)
    assert "top-5 predictions" in text_of(note)


def test_a_backbone_with_labels_still_prunes_by_the_cls_cosine(dash_app: Dash, api: ApiClient) -> None:
    # a probe is fitted over a dataset; one image's pruning has none, and says so
    _state, built = built_for(api, BACKBONE)
    assert built.hidden == {ids.HEAD_TOP5} and built.notes[0].id == ids.HEAD_NO_CLASSIFIER
    assert "CLS embedding cosine per mode" in built.figure(ids.HEAD_MODES).layout.title.text


def test_a_classifier_keeps_its_top5_and_class_probabilities(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import head

    state, built = built_for(api, "demo")
    assert not built.hidden and not built.notes
    assert (
        built.figure(ids.HEAD_MODES).layout.title.text
        == "Partial pruning: probability of the class per mode · L1 H2 · image #0"
    )
    assert list(built.figure(ids.HEAD_TOP5).data[0].y)[-1] == "disk"
    assert find(head.body(state, built), ids.card(ids.HEAD_TOP5)).style == {}


def test_a_render_sends_only_the_graphs_whose_part_changed(dash_app: Dash, api: ApiClient, hold: Any) -> None:
    from frontend.pages import head

    attention = {ids.HEAD_OVERLAY, ids.HEAD_MATRIX, ids.HEAD_VALUES, ids.HEAD_BIPARTITE}
    pruning = {ids.HEAD_MODES, ids.HEAD_TOP5}
    state, shown = built_for(api, "demo")
    everything = set(state.job_ids().values())
    # the pruning job of a new head is still running: the attention views change, the modes wait
    other, _ = head.derive(api, state.replace(head=3))
    hold(other.hp or "")
    running = head.build(api, other, everything - {other.hp or ""})
    assert head.PAGE.changed(running, shown.signatures) == attention | pruning
    assert "Pruning L1 H3" in running.figure(ids.HEAD_MODES).layout.annotations[0].text
    # it finishes: only its graphs are sent again
    finished = head.build(api, other, everything | {other.hp or ""})
    assert head.PAGE.changed(finished, running.signatures) == pruning
    # another query patch is a slice of the attention job; another mode only redraws the pruning views
    query = head.build(api, other.replace(query=7), everything | {other.hp or ""})
    assert head.PAGE.changed(query, finished.signatures) == attention
    mode = head.build(api, other.replace(mode=3), everything | {other.hp or ""})
    assert head.PAGE.changed(mode, finished.signatures) == pruning
    # nothing changed: nothing is sent, and a browser that shows nothing yet gets everything
    assert head.PAGE.changed(finished, finished.signatures) == set()
    assert head.PAGE.changed(finished, {}) == attention | pruning


def test_a_link_without_finished_jobs_still_asks_for_every_layer_of_a_known_model(
    dash_app: Dash, api: ApiClient
) -> None:
    from frontend.pages import head

    # the demo's size is known without a finished job: no one-layer job that a later click replaces
    state, problem = head.derive(api, HeadState(model="demo", data=DATA["dataset"], layer=2, head=1))
    assert problem is None
    assert api.job(state.hd or "")["params"]["layer"] is None


def test_a_job_that_finished_since_the_last_poll_draws_at_once(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import head

    state, _ = built_for(api, "demo")
    other, _ = head.derive(api, state.replace(head=3))
    # the tracker has not seen the new pruning job finish, but its record says done: it draws now
    built = head.build(api, other, set(state.job_ids().values()) - {other.hp or ""})
    assert "hp" not in built.messages
    assert built.figure(ids.HEAD_MODES).layout.title.text.endswith("L1 H3 · image #0")
