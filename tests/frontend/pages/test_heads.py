"""/heads against the fake API: a backbone's job offers only the metrics it has and says why the
class-based ones are missing; a probe says where its classes come from; a classifier is as before."""

from __future__ import annotations

from typing import Any

import numpy as np
from dash import Dash

from frontend import ids
from frontend.api import ApiClient
from frontend.state import HeadsState
from tests.frontend.fake_api import BACKBONE
from tests.utils.components import find, text_of

DATA = {"dataset": "synthscenes:6:seed=0"}
TASK_FREE_METRICS = ["cls_cosine_drop", "patch_change", "embedding_taylor", "layer_impact"]


def importance_job(api: ApiClient, model: str = "demo", **params: Any) -> str:
    return str(api.submit("head-importance", model, DATA, params)["id"])


def test_a_backbone_offers_only_task_free_metrics_and_says_why(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import heads

    state = HeadsState(hi=importance_job(api, BACKBONE, probe=False), metric="accuracy_drop")
    built = heads.build(api, state, {state.hi or ""})
    assert built.metrics == TASK_FREE_METRICS and built.metric == "cls_cosine_drop"
    menu = find(heads.body(state, built), ids.HEADS_METRIC)
    assert [o["value"] for o in menu.options] == TASK_FREE_METRICS and menu.value == "cls_cosine_drop"
    assert menu.options[0]["label"] == "CLS embedding change (1 − cos)"
    assert "CLS embedding change (1 − cos)" in built.figure(ids.HEADS_IMPORTANCE).layout.title.text
    [note] = built.notes
    assert note.id == ids.HEADS_NO_CLASSIFIER
    text = text_of(note)
    assert f"No classifier: this model is a backbone ({BACKBONE})" in text
    assert "class-based metrics need a classifier or labelled images for a probe" in text
    assert "Left out: accuracy drop, probability drop, loss change and gradient estimate (Taylor)" in text
    assert "the model has no classifier and probe=false" in text  # the job's own reason
    # the link then says what the heatmap shows; a metric the job has stays as the link gave it
    assert heads.shown_metric(api, state)[0].metric == "cls_cosine_drop"
    kept = state.replace(metric="patch_change")
    assert heads.shown_metric(api, kept)[0] == kept


def test_a_backbone_line_shows_the_cls_cosine_and_no_invented_prediction(
    dash_app: Dash, api: ApiClient
) -> None:
    from frontend.pages import heads

    state = HeadsState(hi=importance_job(api, BACKBONE, probe=False), image=2)
    built = heads.build(api, state, {state.hi or ""})
    line = built.figure(ids.HEADS_PROB_AFTER)
    assert line.layout.title.text.startswith("CLS embedding cosine after pruning each head")
    expected = api.result(state.hi or "", "cls_cosine_after")[2].ravel()
    np.testing.assert_allclose(line.data[0].y, expected)
    assert not line.layout.shapes  # no "unpruned probability" line
    assert [o["label"] for o in built.image_options] == [f"#{i}" for i in range(6)]


def test_a_probe_says_its_classes_come_from_it(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import heads

    state = HeadsState(hi=importance_job(api, BACKBONE))  # labelled scenes: a probe is fitted
    built = heads.build(api, state, {state.hi or ""})
    [note] = built.notes
    assert note.id == ids.HEADS_PROBE
    assert "class metrics from a linear probe (held-out accuracy 0.87" in text_of(note).lower()
    assert built.metrics[:4] == ["accuracy_drop", "prob_drop", "loss_change", "taylor"]
    assert "cls_cosine_drop" in built.metrics and built.metric == "accuracy_drop"
    assert built.figure(ids.HEADS_PROB_AFTER).layout.title.text.startswith("Probability after pruning")
    assert "→" in built.image_options[0]["label"]  # the probe's prediction
    assert "probe accuracy (its training images included) 0.900" in text_of(built.summary)


def test_a_classifier_shows_its_class_metrics_and_no_note(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import heads

    state = HeadsState(hi=importance_job(api), metric="loss_change")
    built = heads.build(api, state, {state.hi or ""})
    assert built.metrics == ["accuracy_drop", "prob_drop", "loss_change", "taylor", "layer_impact"]
    assert built.metric == "loss_change" and not built.notes and not built.hidden
    assert "Loss change" in built.figure(ids.HEADS_IMPORTANCE).layout.title.text
    assert built.figure(ids.HEADS_PROB_AFTER).layout.title.text.startswith("Probability after pruning")
    assert find(heads.body(state, built), ids.HEADS_NO_CLASSIFIER) is None
