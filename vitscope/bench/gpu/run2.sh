#!/usr/bin/env bash
# GPU run 2: the analysis benchmarks on one H200. Usage on the device machine: bash vitscope/bench/gpu/run2.sh
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=$PWD:/tmp/site
V="python3 -m vitscope.cli"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
step() { name=$1; shift; echo "== $name"; timeout ${LIMIT:-240} "$@" 2> $OUT/$name.err | tee $OUT/$name.jsonl; tail -3 $OUT/$name.err; }
step head_importance $V bench head-importance --model random:vit-base --images 256 --device cuda --dtype bfloat16
step attention_profile $V bench attention-profile --model random:vit-base --images 256 --device cuda --dtype bfloat16
step attention_profile_fp32 $V bench attention-profile --model random:vit-base --images 256 --device cuda --dtype float32
step eigencam $V bench eigencam --model random:vit-base --images 256 --device cuda
step attention_patterns $V bench attention-patterns --model random:vit-base --images 1000 --device cuda
