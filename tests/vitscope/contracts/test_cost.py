"""`estimate_cost`: images x model size x analysis, in GFLOP, from the spec alone."""

import pytest

from tests.utils.models import FAMILIES
from vitscope.contracts.cost import JobCost, estimate_cost, model_geometry, pass_gflop
from vitscope.contracts.jobs import normalize_job


def cost(kind="head-importance", model="demo", dataset="synthscenes:100", **params):
    return estimate_cost(
        normalize_job({"kind": kind, "model": model, "inputs": {"dataset": dataset}, "params": params})
    )


def test_a_vit_base_pass_costs_what_its_published_flops_say():
    # ViT-B/16 at 224 px: 17.6 GMACs, i.e. about 35 GFLOP counting a multiply-add as two
    assert pass_gflop(model_geometry("random:vit-base")) == pytest.approx(35.1, rel=0.03)


def test_cost_scales_with_the_images_the_model_and_the_analysis():
    small, large = cost(dataset="synthscenes:100"), cost(dataset="synthscenes:1000")
    assert large.gflop == pytest.approx(10 * small.gflop)
    assert cost(model="google/vit-base-patch16-224").gflop > 30 * small.gflop  # priced as ViT-Base
    assert cost(kind="attention-profile").gflop < small.gflop / 10  # one pass, not one per head
    assert cost(taylor=False).gflop < small.gflop


def test_the_head_importance_run_that_took_13_hours_exceeds_the_default_budget():
    from backend.settings import ApiSettings

    assert cost(dataset="synthscenes:100000").gflop > ApiSettings().max_job_gflop
    assert cost(dataset="synthscenes:256").gflop < ApiSettings().max_job_gflop / 10


def test_a_zip_counts_its_images_or_the_most_a_zip_may_hold():
    spec = normalize_job({"kind": "eigencam", "model": "demo", "inputs": {"zip": "a" * 64}})
    assert estimate_cost(spec, zip_images=10).images == 10
    assert estimate_cost(spec).images == 20_000


def test_seconds_divide_the_gflop_by_the_rate():
    assert JobCost(images=10, passes=2, gflop_per_pass=5.0).seconds(50.0) == pytest.approx(2.0)
    assert JobCost(images=1, passes=1, gflop_per_pass=1.0, extra_gflop=9).gflop == 10


def test_the_head_pages_light_kinds_cost_one_image_whatever_the_inputs_hold():
    big = {"model": "random:vit-base", "inputs": {"dataset": "synthscenes:100000"}}
    detail = estimate_cost({**big, "kind": "head-detail", "params": {"image": 7}})
    pruning = estimate_cost({**big, "kind": "head-pruning", "params": {"image": 7, "layer": 3, "head": 2}})
    one_pass = pass_gflop(model_geometry("random:vit-base"))
    assert detail.images == pruning.images == 1
    assert detail.gflop < 2 * one_pass and pruning.gflop <= 4 * one_pass


def test_eigencam_faithfulness_costs_one_pass_per_map_curve_and_inner_step():
    plain = cost("eigencam", dataset="synthscenes:10", faithfulness=False)
    scored = cost("eigencam", dataset="synthscenes:10", faithfulness_steps=4)
    maps = 6 + 2 + 2  # the demo's 6 layers, rollout and Grad-CAM, random and centre
    assert scored.passes - plain.passes == 2 + 2 * maps * 3


def test_the_randomization_sample_costs_the_same_whatever_the_jobs_images():
    one_pass = pass_gflop(model_geometry("demo"))
    per_image = {n: cost("eigencam", dataset=f"synthscenes:{n}", faithfulness=False) for n in (2, 20)}
    # ten passes per image: the maps with rollout and Grad-CAM (five), and the same of the random copy
    sample = 8 * (6 + 1 + 10) * one_pass  # the cascade over 6 blocks and its own ten passes, 8 images
    for n, estimate in per_image.items():
        assert estimate.gflop == pytest.approx(n * 10 * one_pass + sample)
    on_job = cost("eigencam", dataset="synthscenes:2", faithfulness=False, sanity_reference="job")
    assert on_job.gflop == pytest.approx(2 * 10 * one_pass + 2 * 7 * one_pass)  # the cascade on both
    plain = cost("eigencam", dataset="synthscenes:2", faithfulness=False, baselines=False)
    assert plain.gflop == pytest.approx(2 * 2 * one_pass + 8 * (6 + 1 + 2) * one_pass)  # one pass each


def test_only_specs_known_without_loading_have_a_known_geometry() -> None:
    from vitscope.contracts.cost import DEMO, UNKNOWN, known_geometry

    assert known_geometry("demo") == DEMO
    assert known_geometry("random:deit-distilled-tiny") == (12, 192, 3, 224, 16, 2)
    assert known_geometry("google/vit-base-patch16-224") is None
    assert model_geometry("google/vit-base-patch16-224") == UNKNOWN


@pytest.mark.parametrize(
    "spec",
    ["demo", *(f"random:{family}-{size}" for family in FAMILIES for size in ("micro", "tiny"))],
)
def test_a_known_geometry_is_the_loaded_models_own(spec) -> None:
    # the contracts price models without torch, so they keep their own table of sizes
    # (vitscope/vit/models/configs.py builds the models): the two must not drift apart
    from vitscope.contracts.cost import known_geometry
    from vitscope.vit.models import load_model

    lm = load_model(spec)
    layout = lm.layout
    loaded = (lm.num_layers, lm.model.config.hidden_size, lm.num_heads, layout.image_size[0])
    assert known_geometry(spec) == (*loaded, layout.patch_size, layout.n_prefix)
