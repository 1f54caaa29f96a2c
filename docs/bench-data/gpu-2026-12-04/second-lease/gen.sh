#!/bin/bash
# The transformers generator backend on the GPU (MUCODE_DEVICE=cuda): bench/generation.py on a
# random-weights model of the bundled 0.5B shape (no weights reach this machine; end of sequence
# suppressed, so every sample is --tokens long and the rate is a real one).
set -x
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site
mkdir -p /tmp/tok && cp .gpu/tok/tokenizer_config.json .gpu/tok/chat_template.jinja /tmp/tok/ && gunzip -c .gpu/tok/tokenizer.json.gz > /tmp/tok/tokenizer.json
cd bench
python3 -c "
from pathlib import Path
from gpu_training import random_model
random_model(Path('../.gpu/qwen2.5-0.5b/config.json'), Path('/tmp/tok'), Path('/tmp/r05'))" > $OUT/build.log 2>&1 || exit 5
for t in 128 512; do
  MUCODE_MODEL=/tmp/r05 MUCODE_DEVICE=cuda timeout 110 python3 generation.py --one transformers --tokens $t > $OUT/gen-$t.log 2>&1
  echo "tokens $t exit $?"; tail -1 $OUT/gen-$t.log
done
nvidia-smi --query-gpu=name,memory.used --format=csv
echo "total $(( $(date +%s) - T0 )) s"
