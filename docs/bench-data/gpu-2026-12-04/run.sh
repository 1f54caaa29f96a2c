#!/bin/bash
# The GPU piece of issue 19's paper-scale recipe (bench/gpu_training.py), on the lent H200.
set -x
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
nproc; free -g | head -2
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site
(cd /tmp && python3 -c "import datasets") || python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .gpu/fallback/*.whl
cd /tmp && python3 -c "
import torch, transformers, trl, peft, accelerate, datasets, pyarrow, pydantic
import mucode.training.sft, mucode.training.verifier, mucode.cli
print('versions', torch.__version__, transformers.__version__, trl.__version__, peft.__version__, accelerate.__version__, datasets.__version__, pyarrow.__version__, pydantic.__version__, torch.cuda.is_available())
" || exit 4; cd - >/dev/null
mkdir -p /tmp/tok && cp .gpu/tok/tokenizer_config.json .gpu/tok/chat_template.jinja /tmp/tok/ && gunzip -c .gpu/tok/tokenizer.json.gz > /tmp/tok/tokenizer.json
cd bench
timeout 330 python3 gpu_training.py --rows ../.gpu/sft.jsonl.gz --codes ../.gpu/codes.jsonl.gz --tokenizer /tmp/tok \
    --shape qwen2.5-0.5b=../.gpu/qwen2.5-0.5b/config.json --out /tmp/g05 --stages sft,verifier,probe,serve \
    --sft-micro-batch 8 --verifier-micro-batch 16 --stage-timeout 200 > $OUT/run-0.5b.log 2>&1
cp /tmp/g05/report.json $OUT/report-0.5b.json; cp /tmp/g05/stages.log $OUT/stages-0.5b.log
LEFT=$(( 545 - ($(date +%s) - T0) ))
echo "left for 1.5B: $LEFT s"
[ $LEFT -gt 60 ] && timeout $LEFT python3 gpu_training.py --rows ../.gpu/sft.jsonl.gz --codes ../.gpu/codes.jsonl.gz --tokenizer /tmp/tok \
    --shape qwen2.5-1.5b=../.gpu/qwen2.5-1.5b/config.json --out /tmp/g15 --stages sft,verifier --epochs 1 \
    --sft-micro-batch 8 --verifier-micro-batch 16 --stage-timeout $(( LEFT * 3 / 5 )) > $OUT/run-1.5b.log 2>&1
cp /tmp/g15/report.json $OUT/report-1.5b.json; cp /tmp/g15/stages.log $OUT/stages-1.5b.log
nvidia-smi --query-gpu=name,memory.used --format=csv
echo "total $(( $(date +%s) - T0 )) s"
