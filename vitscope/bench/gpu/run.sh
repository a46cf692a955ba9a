#!/usr/bin/env bash
# Every vitscope benchmark on one GPU machine, as JSON lines in $OUT/benches.jsonl.
#
#   bash vitscope/bench/gpu/run.sh [all|core|trust|profile|speed|eigencam|runpath|runprofile|floor]   (from the repository root; OUT defaults to ./out)
#
# Installs, offline and without dependency resolution, exactly the wheels listed in
# vitscope/bench/gpu/requirements-gpu.txt from .whl/ (see that file for how to fetch them), records
# the machine and library versions, then runs each step under a time limit; a failing step is logged
# and the others still run. `core`: the speed benches (head importance, Eigen-CAM, the run path, the
# stack, the CUDA tests, capture, profiles, patterns); `trust`: the faithfulness bench and the
# 500-image held-out localization report; `all` both (over ten minutes: one device call allows ten, so
# run `trust` and `core` as two calls). `profile` runs the GPU profile (vitscope/bench/gpu/hotspots.py)
# (with the Eigen-CAM solver's before/after and a compiled block) and the core benches without the
# float32 naive loop. `speed`: imports (twice), Eigen-CAM, the run path
# and a head click's jobs in process. `runpath`: `vitscope run` on 1,000 images whole and by phase,
# and its start-up part by part (vitscope/bench/gpu/startup_parts.py). `floor`: head importance's
# analysis by phase on 1,000 images and what fp8 would give (vitscope/bench/gpu/floor.py), then the bench.
# Outputs: benches.jsonl, env.txt, tests.txt, profile.txt and logs.tgz (each step's stderr).
set -u
MODE=${1:-all}
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT" /tmp/vitscope-logs
LOGS=/tmp/vitscope-logs
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  --find-links .whl -r vitscope/bench/gpu/requirements-gpu.txt || exit 1
export PYTHONPATH=$PWD:/tmp/site PATH=/tmp/site/bin:$PATH
V="python3 -m vitscope.cli"
# The image ships torch without bytecode and sets PYTHONDONTWRITEBYTECODE=1, so every process there
# recompiled torch's and transformers' modules (about 10 s of each `vitscope run` before 2026-12-03,
# sixth session); `pip install` writes the bytecode, and so does this, once, as an install would.
start=$(date +%s)
python3 -m compileall -q -j 0 /tmp/site "$PWD/vitscope" "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null 2>&1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import sys, torch, transformers, triton; print(sys.version.split()[0], torch.__version__, transformers.__version__, triton.__version__)"
  nproc
  echo "bytecode compiled in $(($(date +%s) - start)) s"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# step NAME LIMIT_S COMMAND...: the command's JSON lines go to benches.jsonl, its stderr to logs/NAME.err
step() {
  local name=$1 limit=$2
  shift 2
  echo "== $name"
  timeout "$limit" "$@" 2> "$LOGS/$name.err" | grep '^{' | tee -a "$OUT/benches.jsonl"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || { echo "$name failed ($rc)"; tail -4 "$LOGS/$name.err"; }
}

# wall NAME LIMIT_S COMMAND...: process start to JSON out, as a user runs it
wall() {
  local name=$1 limit=$2 start end
  shift 2
  echo "== $name"
  start=$(date +%s.%N)
  timeout "$limit" "$@" > "$LOGS/$name.json" 2> "$LOGS/$name.err"
  local rc=$?
  end=$(date +%s.%N)
  python3 -c "import json,sys; print(json.dumps({'bench': 'wall', 'what': sys.argv[1], 'rc': int(sys.argv[2]), 'wall_s': float(sys.argv[4]) - float(sys.argv[3])}))" \
    "$name" "$rc" "$start" "$end" | tee -a "$OUT/benches.jsonl"
  [ "$rc" = 0 ] || tail -4 "$LOGS/$name.err"
}

if [ "$MODE" = profile ]; then
  timeout 300 python3 vitscope/bench/gpu/hotspots.py > "$OUT/profile.txt" 2> "$LOGS/profile.err"
  grep '^{' "$OUT/profile.txt"; tail -3 "$LOGS/profile.err"
  # Eigen-CAM's Gram and solver before and after the 2026-12-03 changes; a ViT-B block compiled
  timeout 240 python3 vitscope/bench/gpu/solver_variants.py >> "$OUT/profile.txt" 2>> "$LOGS/profile.err"
  step block_compile 300 python3 vitscope/bench/gpu/block_compile.py
fi

# `eigencam`: the Gram and solver before and after (vitscope/bench/gpu/solver_parts.py), the bench on
# both inputs at batch 256 and 64, the Eigen-CAM tests (with their CUDA-only ones) and the run path
if [ "$MODE" = eigencam ]; then
  timeout 300 python3 vitscope/bench/gpu/solver_parts.py > "$OUT/profile.txt" 2> "$LOGS/profile.err"
  grep '^{' "$OUT/profile.txt" | tee -a "$OUT/benches.jsonl"; tail -3 "$LOGS/profile.err"
  for inputs in noise synthscenes; do
    for batch in 256 64; do
      step eigencam_${inputs}_$batch 120 $V bench eigencam --model random:vit-base --images 256 --device cuda \
        --dtype bfloat16 --batch-size $batch --inputs $inputs
    done
  done
  timeout 150 python3 -m pytest -q -p no:cacheprovider tests/vitscope/vit/analysis/test_eigencam.py -rs > "$OUT/tests.txt" 2>&1
  tail -4 "$OUT/tests.txt"
  wall run_eigencam_1000_bf16 120 $V run eigencam --model random:vit-base --dataset synthscenes:1000 \
    --param faithfulness=false --param dtype='"bfloat16"' --param batch_size=256 --out /tmp/run-cam-bf16 --json
  tar -czf "$OUT/logs.tgz" -C "$LOGS" .
  exit 0
fi

if [ "$MODE" = all ] || [ "$MODE" = trust ]; then
  step faithfulness_bf16 120 $V bench faithfulness --model random:vit-base --images 256 --device cuda --dtype bfloat16
  step faithfulness_fp32 240 $V bench faithfulness --model random:vit-base --images 256 --device cuda \
    --dtype float32 --repeats 1
  # the 500-image held-out localization report (#17), kept whole in $OUT
  wall eval_localization_500 300 $V eval-localization demo --dataset synthscenes:500:seed=99 \
    --device cuda --json && cp "$LOGS/eval_localization_500.json" "$OUT/"
fi
[ "$MODE" = trust ] && { tar -czf "$OUT/logs.tgz" -C "$LOGS" .; exit 0; }

# `speed`: what the third session changed (Eigen-CAM's solver, the run path's start-up, a click's
# pruning on a GPU worker), with both sides of each ratio in one run
if [ "$MODE" = speed ]; then
  for attempt in first second; do  # the machine's first import of a library compiles its bytecode
    step import_$attempt 120 python3 -c "
import json, time
t0 = time.perf_counter(); import torch
t1 = time.perf_counter(); import transformers
t2 = time.perf_counter(); from transformers import AttentionInterface
t3 = time.perf_counter()
print(json.dumps({'bench': 'imports', 'attempt': '$attempt', 'torch_s': t1 - t0, 'transformers_s': t2 - t1,
                  'attention_interface_s': t3 - t2}))"
  done
  step eigencam_256 120 $V bench eigencam --model random:vit-base --images 256 --device cuda --dtype bfloat16 --batch-size 256
  step eigencam_64 120 $V bench eigencam --model random:vit-base --images 256 --device cuda --dtype bfloat16 --batch-size 64
  for attempt in 1 2; do
    wall run_head_importance_1000_$attempt 120 $V run head-importance --model random:vit-base \
      --dataset synthscenes:1000 --param dtype='"bfloat16"' --out /tmp/run-hi-$attempt --json
  done
  wall run_eigencam_1000 120 $V run eigencam --model random:vit-base --dataset synthscenes:1000 \
    --param faithfulness=false --out /tmp/run-cam --json
  wall run_eigencam_1000_bf16 120 $V run eigencam --model random:vit-base --dataset synthscenes:1000 \
    --param faithfulness=false --param dtype='"bfloat16"' --param batch_size=256 --out /tmp/run-cam-bf16 --json
  step clicks 120 python3 vitscope/bench/gpu/clicks.py
  tar -czf "$OUT/logs.tgz" -C "$LOGS" .
  exit 0
fi

# `vitscope run` on 1,000 images as issue 16 measures it, process start to JSON out, and by phase
# (imports, model, analysis, writing, exit; vitscope/bench/run_path.py)
run_paths() {
  step run_path_eigencam 200 $V bench run-path --kind eigencam --model random:vit-base --dataset synthscenes:1000 \
    --param faithfulness=false --param dtype='"bfloat16"' --param batch_size=256 --device cuda
  step run_path_eigencam_fp32 200 $V bench run-path --kind eigencam --model random:vit-base \
    --dataset synthscenes:1000 --param faithfulness=false --device cuda --repeats 1
  step run_path_head_importance 200 $V bench run-path --kind head-importance --model random:vit-base \
    --dataset synthscenes:1000 --param dtype='"bfloat16"' --device cuda
}
# `runprofile`: where a kept-weights `vitscope run eigencam` on 1,000 images spends its time (cProfile,
# second of two runs; run-profile.txt), then its run path
if [ "$MODE" = runprofile ]; then
  export VITSCOPE_CACHE_DIR=/tmp/vitscope-profile-cache
  for attempt in 1 2; do
    python3 -m cProfile -o "$OUT/run-eigencam-$attempt.prof" -m vitscope.cli run eigencam --model random:vit-base \
      --dataset synthscenes:1000 --param faithfulness=false --param dtype='"bfloat16"' --param batch_size=256 \
      --device cuda --out /tmp/run-profile > /dev/null 2> "$LOGS/runprofile_$attempt.err" || tail -4 "$LOGS/runprofile_$attempt.err"
  done
  python3 -c "
import pstats, sys
stats = pstats.Stats(sys.argv[1])
stats.sort_stats('cumulative').print_stats('vitscope', 70)
stats.sort_stats('tottime').print_stats(40)" "$OUT/run-eigencam-2.prof" > "$OUT/run-profile.txt" 2>&1
  # which modules the same run imports, slowest first (cumulative microseconds)
  python3 -X importtime -m vitscope.cli run eigencam --model random:vit-base --dataset synthscenes:1000 \
    --param faithfulness=false --param dtype='"bfloat16"' --param batch_size=256 --device cuda \
    --out /tmp/run-profile > /dev/null 2> "$LOGS/importtime.err"
  grep '^import time:' "$LOGS/importtime.err" | sort -t'|' -k2 -n | tail -80 > "$OUT/importtime.txt"
  unset VITSCOPE_CACHE_DIR
  step run_path_eigencam 200 $V bench run-path --kind eigencam --model random:vit-base --dataset synthscenes:1000 \
    --param faithfulness=false --param dtype='"bfloat16"' --param batch_size=256 --device cuda
  tar -czf "$OUT/logs.tgz" -C "$LOGS" .
  exit 0
fi
if [ "$MODE" = floor ]; then
  step floor 400 python3 vitscope/bench/gpu/floor.py
  step head_importance 240 $V bench head-importance --model random:vit-base --images 256 --device cuda \
    --dtype bfloat16 --skip-fp32-naive
  tar -czf "$OUT/logs.tgz" -C "$LOGS" .
  exit 0
fi
if [ "$MODE" = runpath ]; then
  step startup_parts 200 python3 vitscope/bench/gpu/startup_parts.py
  run_paths
  tar -czf "$OUT/logs.tgz" -C "$LOGS" .
  exit 0
fi

HI="bench head-importance --model random:vit-base --images 256 --device cuda --dtype bfloat16"
[ "$MODE" = profile ] && HI="$HI --skip-fp32-naive"
step head_importance 240 $V $HI
step eigencam_256 120 $V bench eigencam --model random:vit-base --images 256 --device cuda --dtype bfloat16 --batch-size 256
[ "$MODE" != profile ] && step eigencam_64 120 $V bench eigencam --model random:vit-base --images 256 --device cuda --dtype bfloat16 --batch-size 64
# with baselines and the sanity check, as issue 16 measures it; faithfulness (on by default since) has
# its own bench above, and at 8 steps it is about 226 forwards per image
run_paths
step job 300 $V bench job --kind head-importance --model random:vit-base --dataset synthscenes:1000 \
  --param dtype='"bfloat16"' --device cuda
start=$(date +%s)
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/vitscope/vit/analysis/test_fused_rings.py \
  tests/vitscope/vit/analysis/test_attention_profile.py > "$OUT/tests.txt" 2>&1
echo "CUDA tests: $(tail -1 "$OUT/tests.txt") in $(($(date +%s) - start)) s" | tee -a "$OUT/tests.txt"
if [ "$MODE" != profile ]; then
  for dt in float32 bfloat16; do
    step capture_$dt 60 python3 -c "
import argparse
from vitscope.bench.capture import run
run(argparse.Namespace(model='random:vit-base', batch=64, device='cuda', dtype='$dt', repeats=20))"
  done
  step attention_profile 120 $V bench attention-profile --model random:vit-base --images 1024 --batch-size 256 \
    --device cuda --dtype bfloat16
  step attention_patterns 120 $V bench attention-patterns --model random:vit-base --images 1000 --device cuda
fi
tar -czf "$OUT/logs.tgz" -C "$LOGS" .
