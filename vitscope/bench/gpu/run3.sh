#!/usr/bin/env bash
# GPU run 3: train the shipped OAT checkpoint, evaluate it, re-measure bf16 benches.
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=$PWD:/tmp/site
V="python3 -m vitscope.cli"
timeout 60 $V bench attention-profile --model random:vit-base --images 256 --device cuda --dtype bfloat16 2>/dev/null | tee $OUT/attention_profile_bf16.jsonl
timeout 90 $V bench eigencam --model random:vit-base --images 256 --device cuda --dtype bfloat16 2> $OUT/eigencam_bf16.err | tee $OUT/eigencam_bf16.jsonl | tail -1
tail -2 $OUT/eigencam_bf16.err
timeout ${TRAIN_S:-330} $V train-scanpath --dataset synthsearch:4000:seed=0 --d-model 256 --layers 4 --crop 64x64 \
  --epochs 300 --batch-size 64 --lr 3e-4 --patience 15 --bf16 --device cuda --out $OUT/checkpoint 2>&1 \
  | grep -v Warning | tee $OUT/train_scanpath.log | grep -E "epoch|val|best" | tail -12
ls -la $OUT/checkpoint
timeout 100 $V eval-scanpath --dataset synthsearch:500:seed=5 --checkpoint $OUT/checkpoint --device cuda --json 2>/dev/null | tee $OUT/eval_scanpath.json
