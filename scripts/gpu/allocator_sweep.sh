#!/usr/bin/env bash
# The allocator sweep as one device call (issue #11; see scripts/gpu/allocator_sweep.py).
# What travels in .gpu/ (ignored: `echo /.gpu/ >> .git/info/exclude`; carried), made here by
#   python scripts/gpu/allocator_pack.py --data ../shared/data/prompt-risk --out .gpu
# prompt-risk.tar.xz, the data folder's JSONL files; enc3/, all-MiniLM-L6-v2's embeddings and
# its layers 0, 2 and 4 in float16 (what --layers 3 keeps; 35 MB, where the whole float32
# model would not fit a call). ENC=.gpu/encN picks another pack.
set -u
OUT=${OUT:-/tmp/sweep-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
work=/tmp/sweep; mkdir -p "$work/data"
tar xJf .gpu/prompt-risk.tar.xz -C "$work/data" || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
python3 scripts/gpu/allocator_sweep.py --data "$work/data/prompt-risk" runtime/conscience/data/allocator_prompts.jsonl \
  --out "$work/out" --encoder "${ENC:-.gpu/enc3}" "$@" 2>&1 | grep -v '^Loading weights' | tee "$OUT/sweep.log"
cp "$work/out/summary.json" "$OUT/" 2>/dev/null
cp "$work/out/"*.pt.part-* "$OUT/" 2>/dev/null
(cd "$work/out" && tar czf "$OUT/logs.tgz" *.log)
ls -la "$OUT"
