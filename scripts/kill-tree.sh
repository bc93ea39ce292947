# kill_tree PID: SIGTERM to PID and every process under it, deepest first. Sourced by setup.sh
# and test.sh: their steps run as background jobs, which ignore SIGINT (no job control), so on
# Ctrl-C or an early exit they stop each step's whole tree themselves.
kill_tree() { local c; for c in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$c"; done; kill -TERM "$1" 2>/dev/null; }
