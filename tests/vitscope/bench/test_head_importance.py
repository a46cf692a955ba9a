"""The head-importance benchmark compares like with like: the naive loop in vitscope's dtype first."""

import argparse

from tests.utils.models import micro
from vitscope.bench.head_importance import _compare, preprocess, synth_images
from vitscope.vit.analysis.precision import model_in


def args(dtype: str) -> argparse.Namespace:
    return argparse.Namespace(
        dtype=dtype, batch_size=4, chunk_size=16, no_recheck=False, skip_fp32_naive=False, device="cpu"
    )


def test_bfloat16_run_reports_the_same_dtype_loop_first_and_the_exact_float32_loop_second():
    lm = micro("vit")
    images, labels = synth_images(lm, 6)
    batches = preprocess(lm, images, labels, 4)
    same, exact = _compare(lm, model_in(lm, "bfloat16"), batches, args("bfloat16"), "cpu")
    assert same["bench"] == "head-importance" and same["naive_dtype"] == "bfloat16"
    assert exact["bench"] == "head-importance-vs-fp32" and exact["naive_dtype"] == "float32"
    assert exact["accuracy_drop_max_abs_diff_pp"] == 0.0  # the re-check makes the drops float32's
    assert same["vitscope_s"] == exact["vitscope_s"] and same["schedule_min_flops"] > 0


def test_float32_run_has_one_line_its_loop_being_the_exact_answer():
    lm = micro("vit")
    images, labels = synth_images(lm, 4)
    lines = _compare(lm, lm, preprocess(lm, images, labels, 4), args("float32"), "cpu")
    assert [line["naive_dtype"] for line in lines] == ["float32"]
    assert lines[0]["accuracy_drop_max_abs_diff_pp"] == 0.0


def test_schedule_count_credits_the_cut_blocks_only_where_they_apply():
    from vitscope.bench.head_importance import block_flops, resumed_flops

    vit, dinov2 = micro("vit"), micro("dinov2")  # same sizes; DINOv2's classifier reads the patches too
    assert block_flops(vit) == block_flops(dinov2)
    whole = sum(vit.num_layers - layer for layer in range(vit.num_layers)) * block_flops(vit)
    assert resumed_flops(vit) < resumed_flops(dinov2) < whole


def test_the_default_precision_is_the_one_a_job_on_that_device_would_use(capsys):
    from vitscope.bench.head_importance import run

    namespace = argparse.Namespace(
        model="random:vit-micro",
        images=2,
        dtype=None,
        batch_size=2,
        chunk_size=16,
        no_recheck=False,
        skip_fp32_naive=False,
        skip_full_run=True,
        device="cpu",
    )
    assert run(namespace) == 0
    assert namespace.dtype == "float32"  # on a CPU, the job's own default
    assert '"naive_dtype": "float32"' in capsys.readouterr().out
