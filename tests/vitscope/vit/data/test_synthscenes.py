"""SynthScenes: determinism, boxes, layouts, similarity, crops and dataset specs."""

from __future__ import annotations

import numpy as np
import pytest

from vitscope.contracts.errors import UserError
from vitscope.vit.data import render_pool
from vitscope.vit.data.scenes import SceneObject
from vitscope.vit.data.synthscenes import (
    CATEGORIES,
    SEARCH_PALETTE,
    SynthScenes,
    SynthSearch,
    crop,
    object_similarity,
    render_workers,
    search_scene,
)


def _inside(box: tuple[float, float, float, float], hw: tuple[int, int]) -> bool:
    x0, y0, x1, y1 = box
    return 0 <= x0 < x1 <= hw[1] and 0 <= y0 < y1 <= hw[0]


# ---------------------------------------------------------------- labelled set


def test_same_seed_and_index_give_identical_bytes() -> None:
    a, b = SynthScenes(10, seed=3)[7], SynthScenes(50, seed=3)[7]
    assert a.image.tobytes() == b.image.tobytes()
    assert (a.label, a.box) == (b.label, b.box)


def test_different_seed_or_index_gives_a_different_image() -> None:
    base = SynthScenes(5, seed=0)
    assert base[1].image.tobytes() != SynthScenes(5, seed=1)[1].image.tobytes()
    assert base[1].image.tobytes() != base[2].image.tobytes()


def test_item_alone_equals_item_in_batch() -> None:
    ds = SynthScenes(11, seed=5, image_size=64)
    batches = list(ds.batches(4))
    assert [len(b[1]) for b in batches] == [4, 4, 3]
    images, labels, boxes = batches[2]
    assert images.dtype == np.uint8 and images.shape == (3, 64, 64, 3)
    assert labels.dtype == np.int64 and boxes.dtype == np.float32 and boxes.shape == (3, 4)
    item = ds[9]
    np.testing.assert_array_equal(images[1], item.image)
    assert labels[1] == item.label
    np.testing.assert_array_equal(boxes[1], np.asarray(item.box, np.float32))


def test_box_is_inside_image_and_tight_around_the_object_mask() -> None:
    ds = SynthScenes(40, seed=2)
    for i in range(len(ds)):
        item, mask = ds[i], ds.object_mask(i)
        assert _inside(item.box, (96, 96))
        x0, y0, x1, y1 = (int(c) for c in item.box)
        assert mask.sum() == mask[y0:y1, x0:x1].sum() > 0
        inner = mask[y0:y1, x0:x1]
        assert inner[0].any() and inner[-1].any() and inner[:, 0].any() and inner[:, -1].any()
        assert 0.25 * 96 <= max(x1 - x0, y1 - y0) <= 0.75 * 96


def test_object_stands_out_from_its_surroundings() -> None:
    ds = SynthScenes(40, seed=4)
    contrasts = []
    for i in range(len(ds)):
        image, mask = ds[i].image.astype(float), ds.object_mask(i)
        contrasts.append(np.linalg.norm(image[mask].mean(axis=0) - image[~mask].mean(axis=0)))
    assert np.mean(np.array(contrasts) > 40) >= 0.9


def test_every_category_appears_with_roughly_balanced_counts() -> None:
    labels = np.concatenate([b[1] for b in SynthScenes(280, seed=0, image_size=32).batches(70)])
    counts = np.bincount(labels, minlength=len(CATEGORIES))
    assert len(CATEGORIES) >= 12 and len(set(CATEGORIES)) == len(CATEGORIES)
    assert counts.min() >= 8 and counts.sum() == 280


@pytest.mark.parametrize("hw", [(64, 128), (120, 48)])
def test_non_square_image_sizes(hw: tuple[int, int]) -> None:
    ds = SynthScenes(12, seed=1, image_size=hw)
    images, _, boxes = next(ds.batches(12))
    assert images.shape == (12, *hw, 3)
    assert all(_inside(tuple(b), hw) for b in boxes.tolist())


@pytest.mark.parametrize("size", [8, (96, 0), (96, 96, 3)])
def test_rejects_unusable_image_size(size: object) -> None:
    with pytest.raises(UserError, match="image size"):
        SynthScenes(4, image_size=size)  # type: ignore[arg-type]


def test_index_out_of_range_raises_index_error() -> None:
    with pytest.raises(IndexError):
        SynthScenes(3)[3]


# ---------------------------------------------------------------- search scenes


def test_grid_scene_lists_objects_row_major_with_boxes_in_their_cells() -> None:
    scene = search_scene(0, 0)
    assert scene.image.shape == (192, 448, 3) and scene.grid == (6, 14)
    assert len(scene.objects) == 84 and 0 <= scene.target < 84
    for i, obj in enumerate(scene.objects):
        r, c = divmod(i, 14)
        assert obj.cell == (r, c)
        x0, y0, x1, y1 = obj.box
        assert 32 * c <= x0 < x1 <= 32 * (c + 1) and 32 * r <= y0 < y1 <= 32 * (r + 1)


def test_grid_scene_honours_a_given_image_size() -> None:
    scene = search_scene(1, 2, "grid:3x5", image_size=(150, 200))
    assert scene.image.shape == (150, 200, 3) and len(scene.objects) == 15
    for obj in scene.objects:
        assert obj.cell is not None
        x0, y0, x1, y1 = obj.box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        assert (int(cy // 50), int(cx // 40)) == obj.cell


def test_free_scene_objects_do_not_overlap() -> None:
    scene = search_scene(4, 1, "free:15")
    boxes = np.array([o.box for o in scene.objects])
    assert scene.image.shape == (256, 256, 3) and scene.grid is None and len(boxes) == 15
    assert all(o.cell is None and _inside(o.box, (256, 256)) for o in scene.objects)
    for i in range(15):
        for j in range(i):
            a, b = boxes[i], boxes[j]
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (i, j)


def test_free_scene_with_too_many_objects_is_a_user_error() -> None:
    with pytest.raises(UserError, match="do not fit"):
        search_scene(0, 0, "free:150", image_size=(64, 64))
    with pytest.raises(UserError, match="at most 200 per scene"):
        search_scene(0, 0, "free:400", image_size=(64, 64))


def test_search_scene_is_deterministic_per_seed_and_index() -> None:
    a, b = search_scene(7, 3, "grid:2x3"), SynthSearch(5, seed=7, layout="grid:2x3")[3]
    assert a.image.tobytes() == b.image.tobytes()
    assert a.objects == b.objects and a.target == b.target
    assert a.image.tobytes() != search_scene(7, 4, "grid:2x3").image.tobytes()


def test_distractors_are_graded_in_similarity_to_the_target() -> None:
    scene = search_scene(2, 5)
    target = scene.objects[scene.target]
    others = [o for i, o in enumerate(scene.objects) if i != scene.target]
    same_cat = sum(o.category == target.category and o.color != target.color for o in others)
    same_col = sum(o.color == target.color and o.category != target.category for o in others)
    assert same_cat >= 2 and same_col >= 2
    assert not any(
        (o.category, o.color, o.texture) == (target.category, target.color, target.texture) for o in others
    )
    sims = sorted(object_similarity(target, o) for o in others)
    assert sims[-1] < 1.0 and sims[-1] - sims[0] > 0.5
    assert object_similarity(target, target) == pytest.approx(1.0)


def test_n_categories_limits_the_categories_in_a_scene() -> None:
    scene = search_scene(0, 1, "grid:4x6", n_categories=3)
    assert len({o.category for o in scene.objects}) <= 3
    assert all(o.color in SEARCH_PALETTE for o in scene.objects)


def test_object_similarity_ranks_category_over_colour_over_texture() -> None:
    box = (0.0, 0.0, 1.0, 1.0)
    ref = SceneObject(0, (220, 40, 40), 0, box)
    same_cat = SceneObject(0, (40, 80, 220), 1, box)
    same_colour = SceneObject(1, (220, 40, 40), 1, box)
    same_texture = SceneObject(1, (40, 80, 220), 0, box)
    scores = [object_similarity(ref, o) for o in (same_cat, same_colour, same_texture)]
    assert scores[0] > scores[1] > scores[2] > 0 and all(0 <= s <= 1 for s in scores)


def test_crop_of_the_whole_image_at_its_size_is_the_image() -> None:
    scene = search_scene(0, 0, "grid:2x2")
    h, w = scene.image.shape[:2]
    np.testing.assert_array_equal(crop(scene, (0, 0, w, h), size=(h, w)), scene.image)


def test_crop_resizes_a_box_to_the_requested_size() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    image[10:20, 10:30] = 200
    out = crop(image, (10, 10, 30, 20), size=(8, 16))
    assert out.shape == (8, 16, 3) and out.dtype == np.uint8 and (out == 200).all()


@pytest.fixture
def no_shared_pool():
    render_pool._close_shared()
    yield
    render_pool._close_shared()


def test_batches_rendered_by_a_pool_have_the_bytes_of_the_serial_ones(no_shared_pool):
    scenes = SynthScenes(11, seed=3, image_size=48)
    serial = list(scenes.batches(4, workers=1))
    pooled = list(scenes.batches(4, workers=2))
    assert [len(b[0]) for b in pooled] == [4, 4, 3]
    for a, b in zip(serial, pooled, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_helpers_render_only_sets_worth_their_start_up_and_only_with_cores_to_spare(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert render_workers(16) == 1 and render_workers(127) == 1
    assert render_workers(128) == 8 and render_workers(10_000) == 8
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    assert render_workers(10_000) == 4
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert render_workers(10_000) == 1


def test_the_operator_sets_how_many_helpers_render_a_large_set(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    monkeypatch.setenv("VITSCOPE_RENDER_HELPERS", "3")
    assert render_workers(500) == 3 and render_workers(100) == 1
    monkeypatch.setenv("VITSCOPE_RENDER_HELPERS", "0")
    assert render_workers(500) == 1
    monkeypatch.setenv("VITSCOPE_RENDER_HELPERS", "many")
    with pytest.raises(UserError, match=r"VITSCOPE_RENDER_HELPERS must be a whole number .* got 'many'"):
        render_workers(500)


def test_a_running_pool_renders_even_a_small_set_and_none_is_started_for_one(no_shared_pool, monkeypatch):
    scenes = SynthScenes(8, seed=4, image_size=32)
    serial = next(scenes.batches(8, workers=1))
    next(scenes.batches(8))
    assert render_pool.running_pool() is None  # 8 images: not worth starting helpers
    pool = render_pool.shared_pool(2)
    submitted = []
    submit = pool.submit
    monkeypatch.setattr(pool, "submit", lambda *a: submitted.append(a[3:]) or submit(*a))
    pooled = next(scenes.batches(8))
    assert submitted == [(0, 4), (4, 4)]  # (start, count) of each helper's piece
    for x, y in zip(serial, pooled, strict=True):
        np.testing.assert_array_equal(x, y)
