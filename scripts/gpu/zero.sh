#!/usr/bin/env bash
# DeepSpeed ZeRO-2 then ZeRO-3 on one GPU (issue #14): scripts/gpu/zero.sh [OUT.json] [STEPS]
# Needs torch/transformers/accelerate on the host; trl, deepspeed, datasets and the runtime's
# other pins come from the wheels run_all.sh installs from .whl/ (PYTHONPATH=/tmp/site).
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.."
out=${1:-}
exec python3 scripts/gpu/zero.py --steps "${2:-4}" ${out:+--out "$out"}
