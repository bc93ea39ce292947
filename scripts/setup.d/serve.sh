#!/usr/bin/env bash
# .venv-serve: a real OpenAI-compatible server (`transformers serve`, CPU) for the serving
# gateway's tests (tests/serve). CPU torch 2.13.0 goes in first (from the local wheel where one
# exists) so transformers[serving] pulls no CUDA build. Skipped while runtime/requirements/serve.txt
# is unchanged (stamp), so only the first run pays for the install.
set -euo pipefail
cd "$(dirname "$0")/../.."
STAMPS=.cache/stamps
mkdir -p "$STAMPS"
say() { printf '\033[1m[serve]\033[0m %s\n' "$*" >&2; }
want=$(sha256sum runtime/requirements/serve.txt | cut -c1-16)
if [[ -x .venv-serve/bin/transformers && "$(cat $STAMPS/venv-serve 2>/dev/null)" == "$want" ]]; then
  exit 0
fi
say "python venv (.venv-serve: transformers serve on CPU)"
[[ -x .venv-serve/bin/python ]] || "${PYTHON:-python3}" -m venv .venv-serve
PIP=(.venv-serve/bin/pip install -q --disable-pip-version-check)
torch=$(grep -E '^torch==' runtime/requirements/serve.txt)
"${PIP[@]}" "$torch"
"${PIP[@]}" -r runtime/requirements/serve.txt
echo "$want" > $STAMPS/venv-serve
