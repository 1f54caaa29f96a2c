#!/bin/bash
# Issue 19, deliverable 5: the recipe's verifier command for the 1.5B shape on one H200 —
# `torchrun` (DDP over NCCL), --micro-batch-size 4 — then its serving cost, the probe, and SFT.
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
timeout 430 python3 gpu_training.py --rows ../.gpu/sft.jsonl.gz --codes ../.gpu/codes.jsonl.gz --tokenizer /tmp/tok \
    --shape qwen2.5-1.5b=../.gpu/qwen2.5-1.5b/config.json --out /tmp/g15 --stages verifier,serve,probe,sft --epochs 1 \
    --verifier-micro-batch 4 --verifier-processes 1 --sft-micro-batch 4 --stage-timeout 200 > $OUT/run-1.5b.log 2>&1
echo "gpu_training exit $?"
cp /tmp/g15/report.json $OUT/report-1.5b.json; cp /tmp/g15/stages.log $OUT/stages-1.5b.log
echo "total $(( $(date +%s) - T0 )) s"
