"""Lower-precision passes: the TF32 block."""

import torch

from vitscope.vit.analysis.precision import tf32


def test_tf32_block_restores_the_matmul_precision():
    before = torch.get_float32_matmul_precision()
    with tf32():
        assert torch.get_float32_matmul_precision() == "high"
    assert torch.get_float32_matmul_precision() == before
