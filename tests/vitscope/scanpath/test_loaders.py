import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitscope.contracts.errors import UserError
from vitscope.scanpath.loaders import (
    fixation_objects,
    grid_boxes,
    load_amazon,
    load_oat_pickle,
    restricted_loads,
)


def _crops(n: int, chw_float: bool = False) -> list[np.ndarray]:
    crops = [np.full((10, 8, 3), 20 * i, dtype=np.uint8) for i in range(n)]
    return [c.transpose(2, 0, 1).astype(np.float32) / 255 for c in crops] if chw_float else crops


def _oat_items() -> list[dict[str, object]]:
    base = {"X": [1.0, 2.0], "Y": [3.0, 4.0], "layout_id": 1, "tgt_id": 5}
    return [
        {**base, "id": 1, "sub_id": "s1", "package_target": np.int64(5), "package_seq": [1, 2, 2, 5],
         "question_img_feature": _crops(6)},
        {**base, "id": 2, "sub_id": "s2", "package_target": [5], "package_seq": np.array([3, 5]),
         "question_img_feature": _crops(6)},
        {**base, "id": 3, "sub_id": "s1", "tgt_id": 2, "package_target": 2, "package_seq": [6, 2],
         "question_img_feature": _crops(6, chw_float=True)},
    ]  # fmt: skip


def test_oat_pickle_is_read_into_zero_based_records(tmp_path: Path) -> None:
    path = tmp_path / "oat.pkl"
    path.write_bytes(pickle.dumps(_oat_items()))
    records = load_oat_pickle(path, grid=(2, 3))
    assert [r.scanpath for r in records] == [(0, 1, 1, 4), (2, 4), (5, 1)]
    assert [r.trial.target for r in records] == [4, 4, 1]
    assert [r.subject for r in records] == ["s1", "s2", "s1"]
    assert records[0].trial is records[1].trial  # same (layout_id, tgt_id): one shared trial
    trial = records[2].trial
    assert trial.image_size == (20, 24) and trial.boxes[5].tolist() == [16, 10, 24, 20]  # cells of crop size
    assert trial.crops is not None and trial.crops[3].dtype == np.uint8 and trial.crops[3][0, 0, 0] == 60


def test_malicious_pickle_is_refused_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([{"package_target": 1, "payload": Exploit()}]))
    with pytest.raises(UserError, match=r"refusing to unpickle .*system"):
        load_oat_pickle(path, grid=(2, 3))
    assert not marker.exists()


def test_restricted_unpickler_rejects_classes_and_garbage() -> None:
    with pytest.raises(UserError, match=r"refusing to unpickle collections\.OrderedDict"):
        restricted_loads(pickle.dumps(__import__("collections").OrderedDict(a=1)))
    with pytest.raises(UserError, match="not a readable pickle"):
        restricted_loads(b"definitely not a pickle")
    arr = restricted_loads(pickle.dumps({"a": np.arange(3.0), "b": (np.float32(2), {1, 2})}))
    assert arr["a"].tolist() == [0.0, 1.0, 2.0]


def test_oat_pickle_with_wrong_crop_count_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "oat.pkl"
    path.write_bytes(pickle.dumps(_oat_items()[:1]))
    with pytest.raises(UserError, match="6 crops do not fill a 2x4 grid"):
        load_oat_pickle(path, grid=(2, 4))


def test_oat_pickle_with_out_of_range_fixation_is_refused(tmp_path: Path) -> None:
    item = {**_oat_items()[0], "package_seq": [1, 9]}
    path = tmp_path / "oat.pkl"
    path.write_bytes(pickle.dumps([item]))
    with pytest.raises(UserError, match=r"object\(s\) \[8\]"):
        load_oat_pickle(path, grid=(2, 3))


def test_fixations_map_to_their_cell_else_the_nearest_centre() -> None:
    boxes = grid_boxes((40, 80), (2, 4))  # 20 x 20 cells, centres x 10..70, y 10, 30
    points = np.array([[5, 5], [25, 5], [45, 25], [200, 30], [-3, 12]], float)
    assert fixation_objects(points, boxes) == [0, 1, 6, 7, 0]


def _write_amazon(tmp_path: Path, long_path: bool) -> Path:
    Image.fromarray(np.zeros((40, 80, 3), np.uint8)).save(tmp_path / "shelf.png")
    fixations = {f"s{k}": [[5, 5], [25, 5], [26, 6], [45, 25]] for k in range(10)}
    if long_path:
        fixations["slow"] = [[5 + (k % 8) * 10, 5] for k in range(40)]
    entry = {"fixations": fixations, "ground_truth": {"xmin": 42, "xmax": 60, "ymin": 22, "ymax": 40},
             "size": [80, 40], "target": "cover.png"}  # fmt: skip
    path = tmp_path / "Amazon.json"
    path.write_text(json.dumps({"shelf.png": entry}))
    return path


def test_amazon_json_maps_fixations_and_finds_the_target_by_iou(tmp_path: Path) -> None:
    records = load_amazon(_write_amazon(tmp_path, long_path=False), grid=(2, 4))
    assert len(records) == 10
    assert records[0].scanpath == (0, 1, 1, 6)  # the repeat in cell 1 stays: a refixation
    assert records[0].trial.target == 6 and records[0].trial.image_size == (40, 80)
    assert records[0].trial is records[9].trial


def test_amazon_drops_scanpaths_beyond_three_sigma(tmp_path: Path) -> None:
    # lengths 4 (x10) and 40: mean 7.3, sd 10.4, |40 - 7.3| > 3 sd
    records = load_amazon(_write_amazon(tmp_path, long_path=True), grid=(2, 4))
    assert len(records) == 10 and all(r.subject != "slow" for r in records)


def test_amazon_missing_image_is_a_user_error(tmp_path: Path) -> None:
    path = _write_amazon(tmp_path, long_path=False)
    (tmp_path / "shelf.png").unlink()
    with pytest.raises(UserError, match=r"shelf\.png named in the JSON does not exist"):
        load_amazon(path, grid=(2, 4))
