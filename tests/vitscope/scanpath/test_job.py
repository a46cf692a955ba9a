"""The scanpath job: built-in scenes, an uploaded scene with boxes or ViT proposals, bad inputs."""

import io

import numpy as np
import pytest
from PIL import Image

from tests.utils.models import micro
from vitscope.contracts.errors import UserError
from vitscope.contracts.jobs import Inputs
from vitscope.contracts.kinds.scanpath import ScanpathParams
from vitscope.scanpath.job import open_source, run
from vitscope.scanpath.proposals import object_features, propose_boxes
from vitscope.vit.analysis.base import no_progress
from vitscope.vit.data.synthscenes import search_scene


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def test_builtin_scenes_give_one_scanpath_per_scene_over_their_objects():
    source = open_source(Inputs(dataset="synthsearch:2:seed=3:layout=grid:3x4"), {}.__getitem__, [])
    result = run(micro("vit"), source, ScanpathParams(samples=5, max_length=10), no_progress)
    assert result.arrays["boxes"].shape == (2, 12, 4)
    paths = result.arrays["scanpath"]
    assert paths.shape[0] == 2 and ((paths == -1) | ((paths >= 0) & (paths < 12))).all()
    assert (paths[:, 0] >= 0).all()  # the first step cannot end the scanpath
    density = result.arrays["density"]
    assert density.shape == (2, 12) and (density >= 0).all() and (density <= 1).all()
    entries = result.summary["scanpaths"]
    assert [e["target"] for e in entries] == result.arrays["targets"].tolist()
    assert {"target_found", "length", "search_ratio"} <= set(result.summary["behaviour"])


def uploaded(params: ScanpathParams):
    scene = search_scene(0, 0, layout="grid:2x3")
    blobs = {"a" * 64: png(scene.image)}
    source = open_source(Inputs(images=("a" * 64,)), blobs.__getitem__, [])
    return scene, run(micro("vit"), source, params, no_progress)


def test_uploaded_scene_with_given_boxes_keeps_them_and_the_target():
    scene = search_scene(0, 0, layout="grid:2x3")
    boxes = tuple(tuple(float(v) for v in o.box) for o in scene.objects)
    _, result = uploaded(ScanpathParams(boxes=boxes, target=4, samples=3))
    np.testing.assert_allclose(result.arrays["boxes"], np.asarray(boxes))
    assert int(result.arrays["targets"]) == 4
    assert result.arrays["image"].shape == scene.image.shape


def test_target_out_of_range_is_refused_naming_the_object_count():
    scene = search_scene(0, 0, layout="grid:2x3")
    boxes = tuple(tuple(float(v) for v in o.box) for o in scene.objects)
    with pytest.raises(UserError, match="target 9 is out of range: the scene has 6 objects"):
        uploaded(ScanpathParams(boxes=boxes, target=9))


def test_boxes_outside_the_image_are_refused():
    with pytest.raises(UserError, match="outside"):
        uploaded(ScanpathParams(boxes=((0.0, 0.0, 5000.0, 10.0),), target=0))


def test_builtin_dataset_of_labelled_images_is_refused_for_scanpaths():
    with pytest.raises(UserError, match="search scenes"):
        open_source(Inputs(dataset="synthscenes:4"), {}.__getitem__, [])


def test_vit_proposals_are_boxes_inside_the_image_and_features_pool_per_box():
    scene = search_scene(1, 0, layout="grid:2x3")
    lm = micro("vit")
    boxes = propose_boxes(lm, scene.image, k=6)
    h, w = scene.image.shape[:2]
    assert len(boxes) >= 1
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w + 1e-6).all() and (boxes[:, 3] <= h + 1e-6).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    feats = object_features(lm, scene.image, boxes)
    assert feats.shape == (len(boxes), 64) and np.isfinite(feats).all()


def test_a_chosen_target_overrides_the_generated_one_on_builtin_scenes():
    source = open_source(Inputs(dataset="synthsearch:2:seed=3:layout=grid:3x4"), {}.__getitem__, [])
    result = run(micro("vit"), source, ScanpathParams(target=5, samples=3, max_length=8), no_progress)
    assert result.arrays["targets"].tolist() == [5, 5]
