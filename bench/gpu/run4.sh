#!/usr/bin/env bash
# GPU run 4: the fused ring kernel on CUDA (tests, then the attention-profile bench), Eigen-CAM benches.
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
for dt in bfloat16 float32; do
  timeout 150 $V bench eigencam --model random:vit-base --images 256 --device cuda --dtype $dt 2>$OUT/ec_$dt.err \
    | tee -a $OUT/eigencam.jsonl | tail -1
  tail -2 $OUT/ec_$dt.err
done
