#!/usr/bin/env bash
# GPU run 4: the fused ring kernel on CUDA: its tests, then the attention-profile bench.
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=$PWD:/tmp/site
V="python3 -m vitscope.cli"
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)"
timeout 240 python3 -m pytest -q -x -p no:cacheprovider tests/worker/analysis/test_fused_rings.py \
  tests/worker/analysis/test_attention_profile.py tests/worker/models/test_hooks.py 2>&1 | tail -4
for dt in bfloat16 float32; do
  timeout 120 $V bench attention-profile --model random:vit-base --images 256 --device cuda --dtype $dt 2>$OUT/ap_$dt.err \
    | tee -a $OUT/attention_profile.jsonl
  tail -3 $OUT/ap_$dt.err
done
timeout 120 $V bench attention-profile --model random:vit-base --images 1024 --batch-size 256 --device cuda --dtype bfloat16 \
  2>/dev/null | tee -a $OUT/attention_profile.jsonl
# where the time goes, per kernel, in one profiled bf16 batch of the fused profile
timeout 90 python3 - <<'PY' 2>&1 | tail -25
import torch
from torch.profiler import profile, ProfilerActivity
from vitscope.vit.models import load_model
from vitscope.vit.analysis.precision import model_in
from vitscope.vit.analysis.rings import RingGeometry
from vitscope.vit.analysis.attention_profile import ProfileAccumulator, profile_batch
lm = model_in(load_model("random:vit-base", device="cuda"), "bfloat16")
x = torch.randn(64, 3, 224, 224, device="cuda", dtype=torch.bfloat16)
geo = RingGeometry.build(lm.layout, lm.device, lm.dtype)
acc = ProfileAccumulator(geo, lm.num_layers, lm.num_heads, lm.device)
for _ in range(3):
    profile_batch(lm, x, acc)
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
    for _ in range(5):
        profile_batch(lm, x, acc)
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=15, max_name_column_width=60))
PY
