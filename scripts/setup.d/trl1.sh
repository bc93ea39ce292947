#!/usr/bin/env bash
# The current TRL stack (runtime/requirements/cpu-current.txt: TRL 1.x, transformers 5.x, CPU torch)
# in its own virtual environment, .venv-trl1, so CI runs the CPU end-to-end training test and
# the TRL-parity test on it as well as on the open-r1 stack in .venv. Skipped while the
# requirements are unchanged (stamp), so only the first run pays for the install.
set -euo pipefail
cd "$(dirname "$0")/../.."
STAMPS=.cache/stamps
mkdir -p "$STAMPS"
say() { printf '\033[1m[trl1]\033[0m %s\n' "$*" >&2; }
want=$(cat runtime/requirements/cpu-current.txt runtime/pyproject.toml | sha256sum | cut -c1-16)
if [[ -x .venv-trl1/bin/python && "$(cat $STAMPS/venv-trl1 2>/dev/null)" == "$want" ]]; then
  exit 0
fi
say "python venv (.venv-trl1: TRL 1.x, transformers 5.x)"
[[ -x .venv-trl1/bin/python ]] || "${PYTHON:-python3}" -m venv .venv-trl1
.venv-trl1/bin/pip install -q --disable-pip-version-check -r runtime/requirements/cpu-current.txt
.venv-trl1/bin/pip install -q --disable-pip-version-check --no-deps -e runtime
echo "$want" > $STAMPS/venv-trl1
