#!/usr/bin/env bash
# GPU run 6: the OAT checkpoints, CNN appearance (shipped) and ViT appearance (the demo ViT's pooled
# patch tokens), trained side by side for a fixed time; then both evaluated on synthsearch:500:seed=5.
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=$PWD:/tmp/site
V="python3 -m vitscope.cli"
TRAIN="train-scanpath --dataset synthsearch:4000:seed=0 --d-model 256 --layers 4 --crop 64x64 --epochs 300 \
  --batch-size 64 --lr 3e-4 --patience 15 --bf16 --device cuda"
for a in cnn vit; do
  timeout ${TRAIN_S:-330} $V $TRAIN --appearance $a --out $OUT/oat_$a 2>&1 | grep -v -i warn > $OUT/train_$a.log &
done
wait
for a in cnn vit; do
  grep -E "epoch" $OUT/train_$a.log | tail -2
  timeout 170 $V eval-scanpath --dataset synthsearch:500:seed=5 --checkpoint $OUT/oat_$a --device cuda --json \
    2>/dev/null > $OUT/eval_$a.json &
done
wait
for a in cnn vit; do python3 -c "
import json,sys; d=json.load(open('$OUT/eval_$a.json'))['methods']
print('$a', {k: (round(v['sequence_score'],4), round(v['delta'],4)) for k,v in d.items()})" 2>&1 | tail -1; done
