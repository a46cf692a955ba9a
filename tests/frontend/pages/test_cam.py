"""/cam against the fake API: a backbone's job has no top-5 and no Grad-CAM panel but a note; maps of
uploaded pictures are drawn in their crop box on the original, or on the analysed crop on request;
the Trust panel draws the job's own faithfulness numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
from dash import Dash

from frontend import ids
from frontend.api import ApiClient
from frontend.figures import method_label
from frontend.state import CamState
from tests.frontend.fake_api import BACKBONE
from tests.utils.components import find, text_of
from tests.utils.uploads import image_bytes

DATA = {"dataset": "synthscenes:6:seed=0"}


def cam_job(api: ApiClient, model: str = "demo", inputs: dict[str, Any] | None = None) -> str:
    return str(api.submit("eigencam", model, inputs or DATA, {})["id"])


def test_a_backbone_gets_a_note_instead_of_top5_and_gradcam(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import cam

    state = CamState(job=cam_job(api, BACKBONE))
    built = cam.build(api, state, {state.job or ""})
    assert built.hidden == {ids.CAM_TOP5, ids.CAM_GRADCAM}
    layout = cam.body(state, built)
    for name in (ids.CAM_TOP5, ids.CAM_GRADCAM):
        assert find(layout, ids.card(name)).style == {"display": "none"}
    assert not any(t.type == "bar" for name, _ in cam.GRAPHS for t in built.figure(name).data)
    note = find(layout, ids.CAM_NO_CLASSIFIER)
    assert note is not None and note in built.notes
    assert text_of(note).startswith(f"No classifier: top-5 predictions and Grad-CAM need one ({BACKBONE}")
    assert "no class scores to rank or differentiate" in text_of(note)  # the job's own reason
    assert "Left out: top-5 predictions, Grad-CAM and Grad-CAM's randomized-weights check" in text_of(note)
    assert built.figure(ids.CAM_ROLLOUT).data[-1].type == "heatmap"  # rollout needs no classifier


def test_a_classifier_keeps_its_top5_and_gradcam_panels(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import cam

    state = CamState(job=cam_job(api))
    built = cam.build(api, state, {state.job or ""})
    assert not built.hidden and not built.notes
    assert built.figure(ids.CAM_TOP5).data[0].type == "bar"
    assert built.figure(ids.CAM_GRADCAM).data[-1].type == "heatmap"
    assert find(cam.body(state, built), ids.card(ids.CAM_TOP5)).style == {}


def test_maps_of_an_upload_lie_in_its_crop_box_on_the_original(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import cam

    upload = api.upload_image("wide.png", image_bytes(size=(80, 50)))  # width 80, height 50
    state = CamState(job=cam_job(api, BACKBONE, {"images": [upload["id"]]}))
    built = cam.build(api, state, {state.job or ""})
    assert built.originals
    assert find(cam.body(state, built), ids.CAM_PICTURE_FIELD).style == {}
    picture, heat = built.figure(ids.CAM_OVERLAY).data
    assert (picture.dx, picture.dy) == (1, 1)  # the original's own pixels
    x, y = np.asarray(heat.x), np.asarray(heat.y)
    # the fake's crop is the centre square: x 15..65, y 0..50, in 4 x 4 cells of 12.5 pixels
    np.testing.assert_allclose([x[0] - 6.25, x[-1] + 6.25, y[0] - 6.25, y[-1] + 6.25], [15, 65, 0, 50])
    assert tuple(built.figure(ids.CAM_OVERLAY).layout.xaxis.range) == (0, 80)
    crop = cam.build(api, state.replace(picture="crop"), {state.job or ""})
    assert list(crop.figure(ids.CAM_OVERLAY).data[1].x) == [0, 1, 2, 3]  # patch coordinates again


def test_built_in_scenes_are_drawn_on_the_analysed_image(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import cam

    state = CamState(job=cam_job(api, BACKBONE))
    built = cam.build(api, state, {state.job or ""})
    assert not built.originals
    assert find(cam.body(state, built), ids.CAM_PICTURE_FIELD).style == {"display": "none"}
    assert list(built.figure(ids.CAM_OVERLAY).data[1].x) == [0, 1, 2, 3]


def test_cam_page_trust_panel_shows_the_jobs_faithfulness_and_verdicts(
    dash_app: Dash, api: ApiClient
) -> None:
    from frontend.pages import cam

    job = cam_job(api)
    built = cam.build(api, CamState(job=job, layer=1, image=2), {job})
    summary = api.summary(job)
    assert all(len(built.figure(name).data) > 0 and name not in built.hidden for name in cam.TRUST_GRAPHS)
    by_layer = built.figure(ids.CAM_TRUST_AUC)
    eigen = [t for t in by_layer.data if t.name == "Eigen-CAM"]
    np.testing.assert_allclose(eigen[0].y, api.result(job, "deletion_auc")[:, :3].mean(0))
    np.testing.assert_allclose(eigen[1].y, summary["insertion_auc_by_method"][:3])
    assert {t.name for t in by_layer.data} >= {"Random map", "Centre prior", "Rollout", "Grad-CAM"}
    curves = built.figure(ids.CAM_TRUST_CURVES)
    np.testing.assert_allclose(curves.data[0].y, api.result(job, "deletion_curve")[2, 1])  # image 2, layer 1
    cascade = built.figure(ids.CAM_TRUST_CASCADE)
    np.testing.assert_allclose(
        cascade.data[0].y, np.abs(api.result(job, "cascade_rank_corr")[:, :, 1]).mean(0)
    )
    verdict = "passes" if summary["sanity"]["eigencam/1"]["passed"] else "fails"
    assert f"layer 1 {verdict}" in cascade.layout.title.text
    assert "on the job's" in cascade.layout.title.text  # the fake's readings come from its own images
    text = str(built.trust)
    best = summary["most_faithful"]
    assert method_label(best["method"]) in text and f"{best['insertion_minus_deletion']:.3f}" in text
    rows = built.trust[-1].children[-1].children  # the table's body
    assert [row.className for row in rows].index("selected") == 1
    cells = [c.children for c in rows[-1].children]  # the centre prior
    assert cells[:3] == [
        "Centre prior",
        *(f"{summary[k][-1]:.3f}" for k in ("deletion_auc_by_method", "insertion_auc_by_method")),
    ]


def test_cam_page_without_faithfulness_hides_the_trust_graphs(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import cam

    job = str(api.submit("eigencam", "demo", DATA, {"faithfulness": False})["id"])
    built = cam.build(api, CamState(job=job), {job})
    assert set(cam.TRUST_GRAPHS) <= built.hidden and "faithfulness was off" in str(built.trust)


def test_cam_page_of_a_backbone_judges_without_gradcam(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import cam

    job = cam_job(api, BACKBONE)
    built = cam.build(api, CamState(job=job), {job})
    names = {t.name for t in built.figure(ids.CAM_TRUST_AUC).data}
    assert "Grad-CAM" not in names and "Random map" in names
    assert "CLS embedding cosine" in str(built.trust)


def test_the_trust_panel_names_where_the_randomization_readings_come_from() -> None:
    from frontend.pages import cam

    fixed = {"sanity_reference": "synthscenes:8:seed=0", "cascade_images": 8}
    assert cam.sanity_sample(fixed) == "on the fixed reference sample synthscenes:8:seed=0"
    assert cam.sanity_sample({"sanity_reference": "job", "cascade_images": 1}) == "on the job's first 1 image"
    reading = {"rank_corr": 0.3, "randomization": "independent", "passed": True}
    summary = {"faithfulness_methods": ["rollout"], "sanity": {"rollout": reading}, **fixed}
    caption = str(cam._trust_table(summary, "rollout").children[0].children)
    assert caption == (
        "Means over the job's images; random-weights |ρ| and check on the fixed reference sample "
        "synthscenes:8:seed=0, the same for every job of this model."
    )
