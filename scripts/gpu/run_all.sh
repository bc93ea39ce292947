#!/usr/bin/env bash
# The GPU checks, run as one prepared script on a lent GPU machine (see docs/benchmarks.md):
#   ZeRO-2/3 training (issue #14), eval vs plain generate (#12), SFT vs plain SFTTrainer (#15),
#   the runtime's GRPO on TRL 1.x vs plain TRL 1.x GRPO (#19).
# Each check runs on its own, writes its JSON and log under $OUT, and a failing check never
# stops the others. Wheels for what the host lacks (trl, datasets, deepspeed, ...) travel in
# .whl/ (see the device notes in docs/development.md).
set -u
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1 TOKENIZERS_PARALLELISM=false
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >"$OUT/pip.log" 2>&1 || { echo "wheel install failed"; tail -5 "$OUT/pip.log"; }
  export PYTHONPATH=/tmp/site:$PWD/runtime
else
  export PYTHONPATH=$PWD/runtime
fi
python3 - <<'PY' >"$OUT/env.json" 2>&1
import json, torch, transformers, accelerate
v = {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "torch": torch.__version__,
     "transformers": transformers.__version__, "accelerate": accelerate.__version__}
for m in ("trl", "datasets", "deepspeed"):
    try:
        v[m] = __import__(m).__version__
    except Exception as e:  # noqa: BLE001
        v[m] = f"unavailable: {e}"
print(json.dumps(v))
PY
cat "$OUT/env.json"
# Which checks to run: the script's arguments (sft grpo eval zero), all four when none are named.
want=" ${*:-sft grpo eval zero} "
check() {  # name, seconds, command...
  local name=$1 secs=$2; shift 2
  case $want in *" $name "*) ;; *) return 0 ;; esac
  echo "== $name"
  timeout "$secs" "$@" >"$OUT/$name.log" 2>&1; local rc=$?
  echo "rc=$rc"; tail -3 "$OUT/$name.log"
}
# The timeouts are each check's ceiling, not its expected time; zero saves a 0.5B ZeRO checkpoint per stage.
# $OUT brings back at most 8 files: pip.log, env.json and a log and a JSON per check, so name at
# most three checks in one call.
check sft 150 python3 scripts/gpu/sft_bench.py --steps 30 --out "$OUT/sft.json"
check grpo 380 python3 scripts/gpu/trl1_grpo.py --steps 8 --out "$OUT/grpo.json"
check eval 200 python3 scripts/gpu/eval_bench.py --prompts 1024 --max-new-tokens 128 --batch-size 128 --repeats 2 --out "$OUT/eval.json"
check zero 240 bash scripts/gpu/zero.sh "$OUT/zero.json" 3
ls -la "$OUT"
