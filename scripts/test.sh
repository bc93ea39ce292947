#!/usr/bin/env bash
# Runs every test suite: Python runtime (pytest), TypeScript unit, webview, launch and
# end-to-end tests (node's test runner). Prints one closing line with the totals.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; exit 1; }
# Every suite's temporaries (node's os.tmpdir(), Python's tempfile and pytest's tmp_path, torch's
# rendezvous folders, browser profiles) go in one folder that is removed when the run ends, so
# repeated runs do not fill the disk (one run leaves a few hundred MB otherwise).
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/coc-test.XXXXXX") || { echo "cannot create a temporary folder"; exit 1; }
trap 'rm -rf "$run_tmp"' EXIT
export TMPDIR="$run_tmp"
mkdir -p test-artifacts
fail=0
passed=0; failed=0

# The Python suites run in the background beside the node suites: nearly every slow test on
# either side is one process on one core (a training subprocess, a browser page), so on two
# cores the two sides take about as long as the longer one instead of the sum. torch gets one
# thread in them (their models are tiny; two threads only contend with the node side). Their
# output is printed after the node tests'.
py_side() {
  export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
  .venv/bin/python -m pytest -q runtime/tests > test-artifacts/pytest.log 2>&1
  echo $? > test-artifacts/pytest.rc
  # The current TRL stack (.venv-trl1: TRL 1.x, transformers 5.x): the CPU end-to-end training
  # test (trainer, rewards, events, resume, evaluation kept out of the training samples), W&B
  # and TensorBoard tracking, the eval engine's shared-prefix cache and encoding (transformers
  # 5.x names the cache argument `cache`); the rest of pytest runs on the default stack above
  # (open-r1's TRL 0.18.2).
  .venv-trl1/bin/python -m pytest -q runtime/tests/test_trl_compat.py runtime/tests/test_train_e2e.py::test_grpo_two_cpu_processes_end_to_end runtime/tests/test_train_e2e.py::test_resume_continues_the_stream \
    runtime/tests/test_train_e2e.py::test_evaluation_completions_are_not_training_samples \
    runtime/tests/test_eval.py::test_shared_prefix_generation_equals_the_plain_left_padded_call \
    runtime/tests/test_eval.py::test_engine_encodes_a_batch_as_the_tokenizer_pads_it \
    runtime/tests/test_eval.py::test_token_counts_in_one_call_match_counting_one_by_one \
    runtime/tests/test_tracking.py > test-artifacts/pytest-trl1.log 2>&1
  echo $? > test-artifacts/pytest-trl1.rc
}
rm -f test-artifacts/pytest.rc test-artifacts/pytest-trl1.rc
# A background job ignores SIGINT (no job control): on Ctrl-C or an early exit the whole tree
# under each (pytest and the trainers its tests started; the node test runner, its test files,
# browsers and servers) is stopped here.
source scripts/kill-tree.sh
py_side &
py_pid=$!
# The steps after it run in the background too, each waited for: a tool that catches Ctrl-C
# and exits with a code (npx, node's test runner) looks to bash like one that failed, so the
# script went on to the next step; a `wait` is cut short by the trap below instead.
node_pid= tsc_pid=
trap 'for p in "$py_pid" $tsc_pid $node_pid; do kill_tree "$p"; done; rm -rf "$run_tmp"' EXIT
trap 'echo "interrupted"; exit 130' INT TERM

echo "== typecheck"
npx tsc -p . --noEmit &
tsc_pid=$!
wait "$tsc_pid" || fail=1

echo "== node tests (unit, webview, launch, e2e)"
shopt -s globstar nullglob
files=(extension/test/**/*.test.ts tests/**/*.test.ts)
rm -f test-artifacts/node.rc
( node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}" 2>&1 | tee test-artifacts/node.log
  echo "${PIPESTATUS[0]}" > test-artifacts/node.rc ) &
node_pid=$!
wait "$node_pid"
rc=$(cat test-artifacts/node.rc 2>/dev/null || echo 1); [[ $rc == 0 ]] || fail=1
p=$(grep -E '^ℹ pass [0-9]+' test-artifacts/node.log | tail -1 | awk '{print $3}'); passed=$((passed + ${p:-0}))
f=$(grep -E '^ℹ fail [0-9]+' test-artifacts/node.log | tail -1 | awk '{print $3}'); failed=$((failed + ${f:-0}))
[[ ${p:-0} -gt 0 ]] || fail=1

# A pytest run's printed log, its exit status and its counts, into the totals.
pytest_result() { # NAME (test-artifacts/NAME.log and NAME.rc)
  cat "test-artifacts/$1.log"
  [[ "$(cat "test-artifacts/$1.rc" 2>/dev/null)" == 0 ]] || fail=1
  p=$(grep -Eo '[0-9]+ passed' "test-artifacts/$1.log" | tail -1 | cut -d' ' -f1); passed=$((passed + ${p:-0}))
  f=$(grep -Eo '[0-9]+ (failed|error)' "test-artifacts/$1.log" | awk '{s+=$1} END {print s+0}'); failed=$((failed + f))
  [[ ${p:-0} -gt 0 ]] || fail=1
}
echo "== runtime (pytest), run beside the node tests"
wait "$py_pid"
pytest_result pytest
echo "== runtime on the current TRL stack (.venv-trl1: TRL 1.x, transformers 5.x), run beside the node tests"
pytest_result pytest-trl1

echo
echo "$passed passed, $failed failed"
exit $fail
