#!/usr/bin/env bash
# Runs every test suite: Python runtime (pytest), TypeScript unit, webview, launch and
# end-to-end tests (node's test runner). Prints one closing line with the totals.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; exit 1; }
mkdir -p test-artifacts
fail=0
passed=0; failed=0

echo "== typecheck"
npx tsc -p . --noEmit || fail=1

echo "== runtime (pytest)"
.venv/bin/python -m pytest -q runtime/tests 2>&1 | tee test-artifacts/pytest.log
rc=${PIPESTATUS[0]}; [[ $rc == 0 ]] || fail=1
p=$(grep -Eo '[0-9]+ passed' test-artifacts/pytest.log | tail -1 | cut -d' ' -f1); passed=$((passed + ${p:-0}))
f=$(grep -Eo '[0-9]+ (failed|error)' test-artifacts/pytest.log | awk '{s+=$1} END {print s+0}'); failed=$((failed + f))

echo "== node tests (unit, webview, launch, e2e)"
shopt -s globstar nullglob
files=(extension/test/**/*.test.ts tests/**/*.test.ts)
node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}" 2>&1 | tee test-artifacts/node.log
rc=${PIPESTATUS[0]}; [[ $rc == 0 ]] || fail=1
p=$(grep -E '^ℹ pass [0-9]+' test-artifacts/node.log | tail -1 | awk '{print $3}'); passed=$((passed + ${p:-0}))
f=$(grep -E '^ℹ fail [0-9]+' test-artifacts/node.log | tail -1 | awk '{print $3}'); failed=$((failed + ${f:-0}))
[[ ${p:-0} -gt 0 ]] || fail=1

echo
echo "$passed passed, $failed failed"
exit $fail
