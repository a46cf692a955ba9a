"""Every image analysis runs on a backbone (no classifier), keeps its schema, and is deterministic."""

import numpy as np
import pytest
import torch

from tests.utils.models import micro_backbone
from vitscope.contracts.jobs import normalize_job
from vitscope.vit.analysis import registry

SMALL = {
    "head-importance": {"batch_size": 4},
    "attention-profile": {"batch_size": 4},
    "attention-patterns": {"batch_size": 4, "epochs": 2, "maps_per_head": 8},
    "eigencam": {"batch_size": 4, "sanity_images": 2},
    "head-detail": {"image": 5, "hist_bins": 8},
    "head-pruning": {"image": 5, "layer": 1, "head": 3},
}


def run(kind: str, family: str):
    spec = normalize_job(
        {"kind": kind, "model": "demo", "inputs": {"dataset": "synthscenes:6:seed=4"}, "params": SMALL[kind]}
    )
    return registry.execute(micro_backbone(family), spec, lambda _id: b"", lambda *_: None)


@pytest.mark.parametrize("kind", list(SMALL))
@pytest.mark.parametrize("family", ["vit", "dinov2-registers"])
def test_a_kind_on_a_backbone_keeps_its_schema_and_repeats_exactly(kind, family):
    first = run(kind, family)  # registry.execute checks the result against the kind's schema
    torch.manual_seed(99)  # nothing may depend on the global generator
    second = run(kind, family)
    assert first.summary["model"]["classifier"] is False
    assert first.arrays.keys() == second.arrays.keys()
    for name, array in first.arrays.items():
        np.testing.assert_array_equal(array, second.arrays[name], err_msg=f"{kind}: {name}")
