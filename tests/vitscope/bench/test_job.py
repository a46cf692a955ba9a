"""The end-to-end job benchmark's own helpers."""

from vitscope.bench.job import _smaller


def test_warm_up_dataset_keeps_the_generator_options_with_fewer_images():
    assert _smaller("synthscenes:1000") == "synthscenes:16"
    assert _smaller("synthscenes:1000:seed=3") == "synthscenes:16:seed=3"
