from dataclasses import replace

import numpy as np
import pytest

from vitscope.contracts.errors import UserError
from vitscope.scanpath.trials import (
    ScanpathRecord,
    Trial,
    grid_cells,
    object_crops,
    target_crop,
    target_similarity,
    trial_from_scene,
)
from vitscope.vit.data.scenes import SceneObject, SearchScene

from .conftest import PALETTE, grid_scene


def test_scene_without_objects_is_refused() -> None:
    scene = SearchScene(image=np.zeros((20, 20, 3), np.uint8), objects=(), target=0)
    with pytest.raises(UserError, match="no objects"):
        trial_from_scene(scene)


def test_target_index_out_of_range_is_refused() -> None:
    with pytest.raises(UserError, match="target index 6 is out of range for 6 objects"):
        trial_from_scene(replace(grid_scene(), target=6))


def test_box_outside_the_image_is_refused() -> None:
    scene = grid_scene()
    moved = SceneObject(0, (1, 2, 3), 0, (50.0, 4.0, 70.0, 16.0), (0, 2))  # image is 60 px wide
    objects = (*scene.objects[:2], moved, *scene.objects[3:])
    with pytest.raises(UserError, match=r"object box 2 .* lies outside the 60x40 image"):
        trial_from_scene(replace(scene, objects=objects))


def test_inverted_box_is_refused(trial: Trial) -> None:
    boxes = trial.boxes.copy()
    boxes[0] = [10, 10, 5, 12]
    with pytest.raises(UserError, match="x1 > x0"):
        replace(trial, boxes=boxes)


def test_scanpath_on_missing_object_is_refused(trial: Trial) -> None:
    with pytest.raises(UserError, match=r"object\(s\) \[7\]"):
        ScanpathRecord(trial, (0, 7))
    with pytest.raises(UserError, match="empty scanpath"):
        ScanpathRecord(trial, ())


def test_grid_needs_one_object_per_cell() -> None:
    with pytest.raises(UserError, match="2x3 grid needs 6 objects"):
        grid_cells(np.zeros((5, 4)), (2, 3))


def test_trial_geometry_and_crops(trial: Trial) -> None:
    assert trial.n == 6 and trial.grid == (2, 3)
    assert trial.cells.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert trial.centres[4].tolist() == [30.0, 30.0]  # box (24, 24, 36, 36)
    crops = object_crops(trial, (8, 6))
    assert crops.shape == (6, 8, 6, 3) and crops.dtype == np.uint8
    assert tuple(crops[2, 4, 3]) == PALETTE[2]  # the crop is the object's square
    assert tuple(target_crop(trial, (8, 6))[4, 3]) == PALETTE[4]


def test_free_layout_cells_are_binned_centres() -> None:
    boxes = np.array([[0, 0, 10, 10], [90, 0, 100, 10], [0, 90, 10, 100]], float)
    cells, grid = grid_cells(boxes, None)
    assert grid == (14, 14)
    assert cells.tolist() == [[0, 0], [0, 13], [13, 0]]


def test_target_similarity_uses_the_generator_attributes(trial: Trial) -> None:
    sim = target_similarity(trial)
    assert sim.shape == (6,) and sim[4] == pytest.approx(1.0)
    assert sim[1] > sim[0]  # object 1 shares the target's category (i % 3), object 0 does not
