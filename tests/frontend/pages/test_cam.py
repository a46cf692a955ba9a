"""/cam against the fake API: a backbone's job has no top-5 and no Grad-CAM panel but a note; maps of
uploaded pictures are drawn in their crop box on the original, or on the analysed crop on request."""

from __future__ import annotations

from typing import Any

import numpy as np
from dash import Dash

from frontend import ids
from frontend.api import ApiClient
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
    assert not any(t.type == "bar" for name, _ in cam.GRAPHS for t in built.figures[name].data)
    note = find(layout, ids.CAM_NO_CLASSIFIER)
    assert note is not None and note in built.notes
    assert text_of(note).startswith(f"No classifier: top-5 predictions and Grad-CAM need one ({BACKBONE}")
    assert "no class scores to rank or differentiate" in text_of(note)  # the job's own reason
    assert "Left out: top-5 predictions, Grad-CAM and Grad-CAM's randomized-weights check" in text_of(note)
    assert built.figures[ids.CAM_ROLLOUT].data[-1].type == "heatmap"  # rollout needs no classifier


def test_a_classifier_keeps_its_top5_and_gradcam_panels(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import cam

    state = CamState(job=cam_job(api))
    built = cam.build(api, state, {state.job or ""})
    assert not built.hidden and not built.notes
    assert built.figures[ids.CAM_TOP5].data[0].type == "bar"
    assert built.figures[ids.CAM_GRADCAM].data[-1].type == "heatmap"
    assert find(cam.body(state, built), ids.card(ids.CAM_TOP5)).style == {}


def test_maps_of_an_upload_lie_in_its_crop_box_on_the_original(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import cam

    upload = api.upload_image("wide.png", image_bytes(size=(80, 50)))  # width 80, height 50
    state = CamState(job=cam_job(api, BACKBONE, {"images": [upload["id"]]}))
    built = cam.build(api, state, {state.job or ""})
    assert built.originals
    assert find(cam.body(state, built), ids.CAM_PICTURE_FIELD).style == {}
    picture, heat = built.figures[ids.CAM_OVERLAY].data
    assert (picture.dx, picture.dy) == (1, 1)  # the original's own pixels
    x, y = np.asarray(heat.x), np.asarray(heat.y)
    # the fake's crop is the centre square: x 15..65, y 0..50, in 4 x 4 cells of 12.5 pixels
    np.testing.assert_allclose([x[0] - 6.25, x[-1] + 6.25, y[0] - 6.25, y[-1] + 6.25], [15, 65, 0, 50])
    assert tuple(built.figures[ids.CAM_OVERLAY].layout.xaxis.range) == (0, 80)
    crop = cam.build(api, state.replace(picture="crop"), {state.job or ""})
    assert list(crop.figures[ids.CAM_OVERLAY].data[1].x) == [0, 1, 2, 3]  # patch coordinates again


def test_built_in_scenes_are_drawn_on_the_analysed_image(dash_app: Dash, api: ApiClient) -> None:
    from frontend.pages import cam

    state = CamState(job=cam_job(api, BACKBONE))
    built = cam.build(api, state, {state.job or ""})
    assert not built.originals
    assert find(cam.body(state, built), ids.CAM_PICTURE_FIELD).style == {"display": "none"}
    assert list(built.figures[ids.CAM_OVERLAY].data[1].x) == [0, 1, 2, 3]
