#!/usr/bin/env bash
# GPU run 5b: the fused ring kernel v3 (tensor-core binning): tests, bench, per-kernel profile.
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=$PWD:/tmp/site
V="python3 -m vitscope.cli"
timeout 150 python3 -m pytest -q -p no:cacheprovider --tb=short tests/worker/analysis/test_fused_rings.py \
  > $OUT/tests.txt 2>&1; tail -3 $OUT/tests.txt
for dt in bfloat16 float32; do
  timeout 100 $V bench attention-profile --model random:vit-base --images 256 --device cuda --dtype $dt 2>$OUT/err_$dt.txt \
    | tee -a $OUT/benches.jsonl; tail -2 $OUT/err_$dt.txt
done
timeout 100 $V bench attention-profile --model random:vit-base --images 1024 --batch-size 256 --device cuda \
  --dtype bfloat16 2>/dev/null | tee -a $OUT/benches.jsonl
timeout 60 python3 vitscope/bench/gpu/profile_kernels.py 2>&1 | tail -12
