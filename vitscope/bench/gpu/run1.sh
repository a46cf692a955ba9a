#!/usr/bin/env bash
# GPU run 1: check the mechanism on the GPU machine's transformers, measure capture cost,
# train the demo model. Usage on the device machine: bash vitscope/bench/gpu/run1.sh
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee $OUT/gpu.txt
python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__)" | tee -a $OUT/gpu.txt
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/worker/models 2>&1 | tail -5 | tee $OUT/tests_models.txt
python3 -c "
import argparse
from vitscope.bench.capture import run
for dt in ['float32', 'bfloat16']:
    run(argparse.Namespace(model='random:vit-base', batch=64, device='cuda', dtype=dt, repeats=20))
" 2>&1 | grep '^{' | tee $OUT/capture.jsonl
python3 -c "
import logging, json, sys
logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
from pathlib import Path
from vitscope.vit.training.demo import DemoRecipe, train
m = train(DemoRecipe(steps=${STEPS:-8000}, max_minutes=${MINUTES:-6.0}), Path('$OUT/demo'), device='cuda', workers=14)
print(json.dumps(m))
" 2>&1 | grep -v Warning | tee $OUT/train_demo.log | tail -25
ls -la $OUT/demo
