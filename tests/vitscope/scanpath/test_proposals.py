"""Per-object ViT features: batched over scenes, equal to the one-scene path."""

from dataclasses import replace

import numpy as np
import pytest

from tests.utils.models import micro
from vitscope.contracts.errors import UserError
from vitscope.scanpath.datasets import synth_trials
from vitscope.scanpath.proposals import object_features, pool_boxes, with_object_features


def test_batched_features_equal_one_scene_at_a_time():
    trials, _ = synth_trials("synthsearch:5:seed=2:layout=grid:2x3")
    lm = micro("vit")
    featured = with_object_features(lm, trials, batch_size=2)
    for t, f in zip(trials, featured, strict=True):
        assert f.features.shape == (t.n, 64)
        np.testing.assert_allclose(f.features, object_features(lm, t.image, t.boxes), atol=1e-5, rtol=1e-5)


def test_pooling_averages_the_patches_whose_centres_fall_in_the_box():
    tokens = np.arange(2 * 3 * 1, dtype=np.float32).reshape(2, 3, 1)  # a 2 x 3 grid on a 20 x 30 image
    boxes = np.array(
        [[0, 0, 20, 10], [10, 0, 30, 20], [14, 14, 16, 16]]
    )  # row 0 cols 0-1; cols 1-2; one patch
    np.testing.assert_allclose(pool_boxes(tokens, (20, 30), boxes)[:, 0], [0.5, 3.0, 4.0])


def test_a_trial_without_an_image_is_refused():
    trials, _ = synth_trials("synthsearch:1:seed=2:layout=grid:2x3")
    crops = tuple(np.zeros((8, 8, 3), np.uint8) for _ in range(trials[0].n))
    with pytest.raises(UserError, match="scene image"):
        with_object_features(micro("vit"), [replace(trials[0], image=None, crops=crops)])
