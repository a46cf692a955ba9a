"""A head click's two jobs in process on one GPU: what a GPU worker on `<queue>.interactive` spends.

    python3 vitscope/bench/gpu/clicks.py   (from the repository root)

Times `head-detail` (one image's forward with every layer's attention captured, histograms and
links) and `head-pruning` (the selected head in six modes) for random:vit-base at 224 px in float32,
the dashboard's precision: the first head of a new image (both jobs, the clean pass not yet kept)
and a head of an image already seen (pruning only, its clean pass kept), for heads of the first,
middle and last layer. Prints one JSON line. Run after a warm-up of the same calls; medians of 5.
"""

from __future__ import annotations

import json
import os
from functools import partial

import torch

from vitscope.bench.common import timed
from vitscope.contracts.kinds.head_detail import HeadDetailParams
from vitscope.contracts.kinds.head_pruning import HeadPruningParams
from vitscope.vit.analysis import head_detail
from vitscope.vit.data.inputs import SynthSource
from vitscope.vit.models import load_model

MODEL = os.environ.get("VITSCOPE_CLICKS_MODEL", "random:vit-base")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def main() -> None:
    lm = load_model(MODEL, DEVICE)
    source = SynthSource(64, seed=3)
    device = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
    record: dict[str, object] = {"bench": "clicks", "model": MODEL, "device": device}
    image = iter(range(1, 64))

    def new_image(layer: int) -> None:
        index = next(image)
        head_detail.run(lm, source, HeadDetailParams(image=index))
        head_detail.run_pruning(lm, source, HeadPruningParams(image=index, layer=layer, head=3))

    def seen_image(layer: int) -> None:
        head_detail.run_pruning(lm, source, HeadPruningParams(image=0, layer=layer, head=3))

    for layer in (0, lm.num_layers // 2, lm.num_layers - 1):
        record[f"first_head_of_new_image_layer_{layer}_s"] = timed(
            partial(new_image, layer), DEVICE, warmup=1
        )
        record[f"head_of_seen_image_layer_{layer}_s"] = timed(partial(seen_image, layer), DEVICE, warmup=1)
    print(json.dumps({**record, "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
