"""conscience.launch: the topology planner's decisions win over the recipe, two launches at
once on one machine each get their own rendezvous port (issue #16 item 4), and a vLLM server
that exits early stops training instead of leaving the trainer waiting for it."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import yaml

from conscience.launch import plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "recipes", "demo", "tiny-cpu.yaml")
CACHE = os.path.join(ROOT, ".cache", "conscience-test-w0")


def _recipe(tmp_path, name="r.yaml", launch=None, **top):
    with open(DEMO) as f:
        r = yaml.safe_load(f)
    r.update({"max_steps": 1, "max_completion_length": 8, "max_prompt_length": 128, "max_train_samples": 8, "save_strategy": "no"})
    r.update(top)
    r["launch"] = launch or {"cpu": True, "num_processes": 2, "num_machines": 1}
    r["safety"] = dict(r.get("safety") or {}, budget_source="label")
    p = tmp_path / name
    p.write_text(yaml.safe_dump(r))
    return str(p)


def _flag(argv, name):
    return argv[argv.index(name) + 1]


def test_planner_overrides_win_over_the_recipe(tmp_path):
    # a recipe written for one machine, run by SLURM on 2 nodes x 2 processes: the argv is
    # accelerate's multi-process mode with the planner's counts, rank, address and port
    p = _recipe(tmp_path, launch={"cpu": True, "num_processes": 1, "num_machines": 1})
    out = subprocess.run(
        [sys.executable, "-m", "conscience.launch", "--config", p, "--dry-run", "--num-processes", "4", "--num-machines", "2",
         "--machine-rank", "1", "--main-address", "10.0.0.7", "--main-port", "23456", "--", "--output_dir", "/o"],
        capture_output=True, text=True, check=True, cwd=os.path.join(ROOT, "runtime"),
    )
    argv = json.loads(out.stdout)
    assert _flag(argv, "--num_processes") == "4" and _flag(argv, "--num_machines") == "2"
    assert "--multi_gpu" in argv and "--cpu" not in argv
    assert "--machine_rank=1" in argv and "--main_process_ip=10.0.0.7" in argv
    assert _flag(argv, "--main_process_port") == "23456"


def test_planner_flags_out_of_range_are_usage_errors(tmp_path):
    # by hand (docs/runtime.md) a typo'd count or port was passed on: -2 processes trained anyway
    # with accelerate's own count, a port past 65535 reached the rendezvous; now exit 2 and one
    # line naming the flag and the range, before anything starts
    p = _recipe(tmp_path)
    for flags, says in [
        (["--num-processes", "0"], "argument --num-processes: must be a whole number >= 1, got '0'"),
        (["--num-processes", "-2"], "argument --num-processes: must be a whole number >= 1, got '-2'"),
        (["--num-machines", "0"], "argument --num-machines: must be a whole number >= 1, got '0'"),
        (["--machine-rank", "-1"], "argument --machine-rank: must be a whole number >= 0, got '-1'"),
        (["--main-port", "99999"], "argument --main-port: must be a whole number from 1 to 65535, got '99999'"),
        (["--vllm-port", "0"], "argument --vllm-port: must be a whole number from 1 to 65535, got '0'"),
        (["--num-machines", "2", "--machine-rank", "2"], "argument --machine-rank: 2 is not a rank of --num-machines 2 (ranks are 0 to 1)"),
    ]:
        for mode in ("--dry-run", "--plan"):
            r = subprocess.run([sys.executable, "-m", "conscience.launch", "--config", p, mode, *flags],
                               capture_output=True, text=True, cwd=os.path.join(ROOT, "runtime"), timeout=60)
            assert r.returncode == 2, (flags, mode, r.stdout, r.stderr)
            assert r.stdout == "" and r.stderr.strip().splitlines()[-1] == f"python -m conscience.launch: error: {says}", (flags, r.stderr)


def test_a_recipe_the_trainer_refuses_is_refused_before_anything_starts(tmp_path):
    # `max_steps: "eight"` passed --dry-run and --plan, and a launch started accelerate, whose
    # ranks each refused it under a ChildFailedError traceback (exit 1): now the launcher refuses
    # it at once with the trainer's FILE:LINE error and exit 2, in every mode
    cwd = os.path.join(ROOT, "runtime")
    for name, top, line, says in [
        ("steps.yaml", {"max_steps": "eight"}, "max_steps", 'max_steps expects an integer, got the string "eight"'),
        ("range.yaml", {"max_steps": -3}, "max_steps", "max_steps = -3 is out of range: it must be >= -1."),
        ("typo.yaml", {"learning_rat": 1e-5}, "learning_rat", "unknown keys for TRL"),
        ("allocator.yaml", {"allocator": {"risk_harmful": 2}}, "risk_harmful", "allocator: "),
    ]:
        p = _recipe(tmp_path, name, **top)
        at = next(i + 1 for i, text in enumerate(open(p).read().splitlines()) if text.lstrip().startswith(line + ":"))
        for mode in (["--dry-run"], ["--plan"], []) if name == "steps.yaml" else (["--dry-run"],):
            r = subprocess.run([sys.executable, "-m", "conscience.launch", "--config", p, *mode, "--", "--output_dir", str(tmp_path / "o")],
                               capture_output=True, text=True, cwd=cwd, timeout=120)
            assert r.returncode == 2, (name, mode, r.stdout, r.stderr)
            assert r.stdout == "" and "Traceback" not in r.stderr, (name, mode, r.stderr)
            assert r.stderr.startswith(f"conscience.launch: {p}:{at}: ") and says in r.stderr, (name, mode, r.stderr)
        assert not (tmp_path / "o").exists()
    # what depends on the machine is left to the trainer: a GPU recipe (bf16) still dry-runs here
    gpu = os.path.join(ROOT, "recipes", "qwen2.5-1.5b-instruct", "safety-grpo.yaml")
    r = subprocess.run([sys.executable, "-m", "conscience.launch", "--config", gpu, "--dry-run"], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert r.returncode == 0 and "conscience.train" in json.loads(r.stdout), r.stderr


def test_no_server_leaves_the_server_to_the_caller(tmp_path):
    p = _recipe(tmp_path, launch={"num_processes": 3, "vllm_server": True, "vllm_server_gpus": 1}, model_name_or_path="Qwen/Qwen2.5-0.5B")
    pl = plan(p, env={"CUDA_VISIBLE_DEVICES": "0,1,2"}, overrides={"num_processes": 3}, no_server=True)
    assert pl["server"] is None and "CUDA_VISIBLE_DEVICES" not in pl["train_env"]


def test_unset_port_is_a_free_one_per_launch(tmp_path):
    p = _recipe(tmp_path)
    a, b = plan(p, env={}), plan(p, env={})
    pa, pb = int(_flag(a["train"], "--main_process_port")), int(_flag(b["train"], "--main_process_port"))
    assert pa != 29500 and pb != 29500
    # the recipe's own port is kept
    q = _recipe(tmp_path, "q.yaml", launch={"cpu": True, "num_processes": 2, "num_machines": 1, "main_process_port": 29511})
    assert _flag(plan(q, env={})["train"], "--main_process_port") == "29511"


def test_two_launches_at_once_both_train(tmp_path):
    # the regression: the second launch died with "another process is utilizing" port 29500
    os.environ["CONSCIENCE_CACHE"] = CACHE
    os.environ["CONSCIENCE_TINY_WARMUP"] = "0"  # the untrained tiny model: faster to build
    from conscience.tiny_model import ensure_tiny

    ensure_tiny()
    env = dict(os.environ, CONSCIENCE_CACHE=CACHE, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=os.path.join(ROOT, "runtime"))
    procs = []
    for name in ("a", "b"):
        p = _recipe(tmp_path, f"{name}.yaml")
        cmd = [sys.executable, "-m", "conscience.launch", "--config", p, "--", "--output_dir", str(tmp_path / name)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=400)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
        assert "utilizing" not in log
    for name in ("a", "b"):
        with open(tmp_path / name / "events.jsonl") as f:
            last = [json.loads(l) for l in f][-1]
        assert last["type"] == "run_finished" and last["status"] == "completed"


def test_checkpoint_request_saves_once(tmp_path):
    # what the batch script does on SLURM's USR1 (sbatch --signal=B:USR1@120): a request file;
    # the trainer saves at the next step end although the recipe never saves, then removes it
    os.environ["CONSCIENCE_CACHE"] = CACHE
    os.environ["CONSCIENCE_TINY_WARMUP"] = "0"  # the untrained tiny model: faster to build
    from conscience.tiny_model import ensure_tiny

    ensure_tiny()
    p = _recipe(tmp_path, launch={"cpu": True, "num_processes": 1, "num_machines": 1}, max_steps=2)
    req = tmp_path / "checkpoint_request"
    req.write_text("")
    env = dict(os.environ, CONSCIENCE_CACHE=CACHE, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.path.join(ROOT, "runtime"), CONSCIENCE_CHECKPOINT_REQUEST=str(req))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "conscience.train", "--config", p, "--output_dir", str(out)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not req.exists()
    assert sorted(d for d in os.listdir(out) if d.startswith("checkpoint-")) == ["checkpoint-1"]
    with open(out / "events.jsonl") as f:
        cps = [json.loads(l) for l in f if '"checkpoint"' in l]
    assert [e["step"] for e in cps if e["type"] == "checkpoint"] == [1]


def _server_recipe(tmp_path, name="s.yaml", **top):
    return _recipe(tmp_path, name, launch={"cpu": True, "num_processes": 1, "vllm_server": True, "vllm_server_gpus": 1}, **top)


def _line(path, key):
    with open(path) as f:
        return next(i for i, l in enumerate(f, 1) if l.startswith(f"{key}:"))


def test_server_and_trainer_use_the_recipes_vllm_server_port(tmp_path):
    import socket

    from conscience.launch import free_port

    port = free_port()
    pl = plan(_server_recipe(tmp_path, vllm_server_port=port), env={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert _flag(pl["server"], "--port") == str(port)
    assert _flag(pl["train"], "--vllm_server_port") == str(port) and _flag(pl["train"], "--vllm_server_host") == "127.0.0.1"
    # the port's digits as a string are the port, as TRL's argparse reads them (and the launcher, scripts.ts)
    pl = plan(_server_recipe(tmp_path, "str.yaml", vllm_server_port=str(port)), env={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert _flag(pl["server"], "--port") == str(port) == _flag(pl["train"], "--vllm_server_port")
    # the model is one argument (--model=VALUE): a value starting with '-' is not read as an option
    assert "--model" not in pl["server"] and any(a.startswith("--model=") for a in pl["server"])
    # no port in the recipe: 8000 when free, else a free one; server and trainer agree either way
    pl = plan(_server_recipe(tmp_path, "d.yaml"), env={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert _flag(pl["server"], "--port") == _flag(pl["train"], "--vllm_server_port")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", 8000))
            s.listen()
        except OSError:
            pass  # somebody else listens on 8000 already: the same situation
        pl = plan(_server_recipe(tmp_path, "e.yaml"), env={"CUDA_VISIBLE_DEVICES": "0,1"})
    got = _flag(pl["server"], "--port")
    assert got != "8000" and got == _flag(pl["train"], "--vllm_server_port")


def test_bad_or_busy_vllm_server_port_names_the_recipe_and_line(tmp_path):
    import socket

    import pytest

    from conscience.recipe import RecipeError

    for bad in (70000, 0, "80x", True):
        p = _server_recipe(tmp_path, vllm_server_port=bad)
        with pytest.raises(RecipeError, match=rf"{p}:{_line(p, 'vllm_server_port')}: vllm_server_port must be a port number"):
            plan(p, env={"CUDA_VISIBLE_DEVICES": "0,1"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        p = _server_recipe(tmp_path, "busy.yaml", vllm_server_port=busy)
        with pytest.raises(RecipeError, match=rf"{p}:{_line(p, 'vllm_server_port')}: vllm_server_port {busy} is in use on this machine"):
            plan(p, env={"CUDA_VISIBLE_DEVICES": "0,1"})
        # the command line says the same and exits 2 before anything starts
        r = subprocess.run([sys.executable, "-m", "conscience.launch", "--config", p, "--", "--output_dir", str(tmp_path / "o")],
                           capture_output=True, text=True, cwd=os.path.join(ROOT, "runtime"), env=dict(os.environ, CUDA_VISIBLE_DEVICES="0,1"),
                           timeout=120)
    assert r.returncode == 2 and f"conscience.launch: {p}:" in r.stderr and "is in use" in r.stderr, r.stderr


def _kernel_port():
    """A port nobody listens on (the kernel's pick), not claimed by this process."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _planning_launch(recipe, default_port=None):
    """Another launch on this machine, still loading its model: a real process that has planned
    `recipe` (its vLLM server not bound yet) and holds on until its stdin closes. Returns
    (process, its server port, its rendezvous port)."""
    code = (
        "import json, sys; import conscience.launch as L\n"
        + (f"L.DEFAULT_SERVER_PORT = {default_port}\n" if default_port else "")
        + f"pl = L.plan({recipe!r}, env={{'CUDA_VISIBLE_DEVICES': '0,1'}})\n"
        "a = pl['train']; print(json.dumps([pl['server'][pl['server'].index('--port') + 1], a[a.index('--main_process_port') + 1]]), flush=True)\n"
        "sys.stdin.read()\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         cwd=os.path.join(ROOT, "runtime"))
    line = p.stdout.readline()
    assert line, "the other launch did not plan"
    server, main = json.loads(line)
    return p, server, main


def test_two_launches_at_once_never_share_a_vllm_server_port(tmp_path, monkeypatch):
    # the first launch's server binds its port only once the model has loaded (minutes): a second
    # launch in between found the port free, and its trainer talked to the first run's server
    import pytest

    import conscience.launch as L
    from conscience.recipe import RecipeError

    default = _kernel_port()  # a free port standing in for 8000, which this machine may use
    other, server, main = _planning_launch(_server_recipe(tmp_path, "a.yaml"), default_port=default)
    try:
        assert server == str(default)
        monkeypatch.setattr(L, "DEFAULT_SERVER_PORT", default)
        pl = plan(_server_recipe(tmp_path, "b.yaml"), env={"CUDA_VISIBLE_DEVICES": "0,1"})
        mine = _flag(pl["server"], "--port")
        assert mine != server and mine == _flag(pl["train"], "--vllm_server_port")
        assert _flag(pl["train"], "--main_process_port") != main
    finally:
        other.stdin.close()
        other.wait(timeout=30)
    # a port the recipe names, claimed by a launch still loading: refused with the file and line
    port = _kernel_port()
    first = _server_recipe(tmp_path, "c.yaml", vllm_server_port=port)
    other, server, _ = _planning_launch(first)
    try:
        assert server == str(port)
        p = _server_recipe(tmp_path, "d.yaml", vllm_server_port=port)
        with pytest.raises(RecipeError, match=rf"{p}:{_line(p, 'vllm_server_port')}: vllm_server_port {port} is taken by another run starting on this machine"):
            plan(p, env={"CUDA_VISIBLE_DEVICES": "0,1"})
    finally:
        other.stdin.close()
        other.wait(timeout=30)
    # once that launch has ended, its claim is gone with it (no stale claim after a crash either)
    assert _flag(plan(p, env={"CUDA_VISIBLE_DEVICES": "0,1"})["server"], "--port") == str(port)


def test_a_claim_holds_across_users_whatever_their_umask(tmp_path):
    # the claims folder is every user's: a claim file made under umask 077 was 0600, another
    # user could not open it to test the lock, and took the port as unclaimed
    import shutil
    import stat
    import tempfile

    port = _kernel_port()
    # the launcher module alone, where any user may read it (tmp_path is root's own)
    pkg = tempfile.mkdtemp(dir="/tmp", prefix="cc-claims-")
    try:
        os.chmod(pkg, 0o755)
        os.makedirs(os.path.join(pkg, "conscience"))
        for f in ("__init__.py", "launch.py"):
            shutil.copy(os.path.join(ROOT, "runtime", "conscience", f), os.path.join(pkg, "conscience", f))
        os.chmod(os.path.join(pkg, "conscience"), 0o755)
        hold = ("import os, sys; os.umask(0o077); from conscience.launch import claim_port; "
                "print(claim_port(int(sys.argv[1]), unknown=False), flush=True); sys.stdin.read()")
        ask = "import sys; from conscience.launch import claim_port; print(claim_port(int(sys.argv[1]), unknown=False))"
        as_users = os.geteuid() == 0 and shutil.which("runuser")
        first = (["runuser", "-u", "nobody", "--"] if as_users else []) + ["/usr/bin/python3", "-c", hold, str(port)]
        second = (["runuser", "-u", "daemon", "--"] if as_users else []) + ["/usr/bin/python3", "-c", ask, str(port)]
        env = dict(os.environ, PYTHONPATH=pkg)
        holder = subprocess.Popen(first, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd="/")
        try:
            assert holder.stdout.readline().strip() == "True"
            mode = stat.S_IMODE(os.stat(f"/tmp/conscience-ports/{port}.lock").st_mode)
            assert mode == 0o644, oct(mode)
            r = subprocess.run(second, capture_output=True, text=True, env=env, cwd="/", timeout=60)
            assert r.stdout.strip() == "False", (r.stdout, r.stderr)
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)
    finally:
        shutil.rmtree(pkg, ignore_errors=True)


def test_the_rendezvous_port_is_never_this_launchs_own_server_port(monkeypatch):
    # free_port() took a port this process had claimed for its vLLM server (not bound yet) as
    # free, and the trainer's rendezvous and the server then met on one port
    import socket as socket_mod

    import conscience.launch as L

    mine = _kernel_port()
    assert L.claim_port(mine)
    picks = iter([mine, mine, _kernel_port()])

    class Sock(socket_mod.socket):
        def getsockname(self):
            return ("127.0.0.1", next(picks))

    monkeypatch.setattr(L.socket, "socket", Sock)
    assert L.free_port() != mine


def test_base_url_with_a_launched_server_is_refused(tmp_path):
    import pytest

    from conscience.recipe import RecipeError

    p = _server_recipe(tmp_path, vllm_server_base_url="http://10.1.2.3:8000")
    with pytest.raises(RecipeError, match=rf"{p}:{_line(p, 'vllm_server_base_url')}: vllm_server_base_url sends the trainer"):
        plan(p, env={"CUDA_VISIBLE_DEVICES": "0,1"})


# run(): the trainer and the vLLM server as real processes (python stand-ins), each in its own group

def _py(code, *args):
    return [sys.executable, "-c", code, *map(str, args)]


def _group_gone(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait_for(path, timeout=20):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    with open(path) as f:
        return f.read()


# a trainer that records its pid (its group's id), starts a child in its group, and would mark
# `trained` after 60 s: what a run that waits for a dead server looks like
_TRAINER = (
    "import os, subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "time.sleep(60)\n"
    "open(sys.argv[2], 'w').write('trained')\n"
)
_AFTER_TRAINER_STARTED = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.05)\n"


def test_a_server_that_exits_early_stops_training_with_its_code(tmp_path, capfd):
    from conscience.launch import run

    pid_file, trained = tmp_path / "trainer.pid", tmp_path / "trained"
    # the server fails once training runs (the trainer has written its pid)
    server = _py(_AFTER_TRAINER_STARTED + "print('vllm: no such model', file=sys.stderr); sys.exit(3)", pid_file, "--model=bad")
    t0 = time.monotonic()
    code = run(_py(_TRAINER, pid_file, trained), dict(os.environ), server, dict(os.environ))
    took = time.monotonic() - t0
    assert code == 3, code
    assert took < 10, f"run() took {took:.1f}s: the trainer was left waiting"
    err = capfd.readouterr().err
    line = next(l for l in err.splitlines() if l.startswith("conscience.launch:"))
    assert "the vLLM server (python -c" in line and "exited with code 3 before training ended; stopping training" in line, line
    assert err.index("vllm: no such model") < err.index(line)  # the server's own error comes first
    pgid = int(_wait_for(pid_file))
    assert _group_gone(pgid), "the trainer's process group is still running"
    assert not trained.exists()


def test_a_trainer_stopped_for_its_server_is_told_why(tmp_path, capfd):
    """The reason reaches the trainer (conscience.train then ends the run `failed` with it, not
    `cancelled`: test_resume_done.py): the file CONSCIENCE_STOP_REASON names holds it
    when the SIGTERM arrives, and is gone after run() returns."""
    from conscience.launch import run

    pid_file, told = tmp_path / "trainer.pid", tmp_path / "told"
    trainer = (
        "import os, signal, sys, time\n"
        "def on_term(*_):\n"
        "    open(sys.argv[2], 'w').write(os.environ['CONSCIENCE_STOP_REASON'] + '\\n' + open(os.environ['CONSCIENCE_STOP_REASON']).read())\n"
        "    sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
        "time.sleep(60)\n"
    )
    server = _py(_AFTER_TRAINER_STARTED + "sys.exit(3)", pid_file)
    assert run(_py(trainer, pid_file, told), dict(os.environ), server, dict(os.environ)) == 3
    path, reason = told.read_text().split("\n", 1)
    assert "the vLLM server (python -c" in reason and "exited with code 3 before training ended" in reason, reason
    assert not os.path.exists(path), "the reason file outlived the run"


def test_what_an_early_exiting_server_started_in_its_group_is_stopped_too(tmp_path, capfd):
    """vLLM's API process can die (OOM) while its engine workers, in its process group, hold the
    GPUs: the group is stopped even though its leader has already exited."""
    import pytest

    from conscience.launch import run

    pid_file, child_file = tmp_path / "trainer.pid", tmp_path / "child.pid"
    server = _py(_AFTER_TRAINER_STARTED +
                 "import subprocess\n"
                 "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
                 "open(sys.argv[2], 'w').write(str(c.pid))\n"
                 "sys.exit(3)", pid_file, child_file)
    assert run(_py(_TRAINER, pid_file, tmp_path / "trained"), dict(os.environ), server, dict(os.environ)) == 3
    child = int(_wait_for(child_file))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the server's worker outlived the run")


def test_a_trainer_that_cannot_start_leaves_no_server_behind(tmp_path):
    import pytest

    from conscience.launch import run

    srv_pid = tmp_path / "server.pid"
    server = _py("import os, sys, time\nopen(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(300)", srv_pid)
    with pytest.raises(OSError):
        run([str(tmp_path / "no-such-python"), "-m", "conscience.train"], dict(os.environ), server, dict(os.environ))
    # a server left running writes its pid within a moment; a stopped one may never get to
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not srv_pid.exists():
        time.sleep(0.05)
    if srv_pid.exists():
        time.sleep(0.1)
        pid = int(srv_pid.read_text())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _group_gone(pid) is False:
            time.sleep(0.1)
        assert _group_gone(pid), "the server outlived a trainer that never started"


def test_a_server_that_exits_0_early_still_fails_the_run(tmp_path, capfd):
    from conscience.launch import run

    pid_file, trained = tmp_path / "trainer.pid", tmp_path / "trained"
    code = run(_py(_TRAINER, pid_file, trained), dict(os.environ), _py(_AFTER_TRAINER_STARTED, pid_file), dict(os.environ))
    assert code == 1
    assert "exited with code 0 before training ended; stopping training" in capfd.readouterr().err
    assert _group_gone(int(_wait_for(pid_file)))


def test_the_trainers_code_is_returned_and_a_running_server_is_stopped(tmp_path, capfd):
    from conscience.launch import run

    srv_pid = tmp_path / "server.pid"
    server = _py(
        "import os, sys, time\n"
        "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
        "time.sleep(60)", srv_pid)
    # the trainer ends (0, then 5) while the server still runs: its code is the run's, the server is stopped
    for want in (0, 5):
        wait_server = f"import os, sys, time\nwhile not os.path.exists({str(srv_pid)!r}): time.sleep(0.05)\nsys.exit({want})"
        assert run(_py(wait_server), dict(os.environ), server, dict(os.environ)) == want
        assert _group_gone(int(_wait_for(srv_pid))), "the vLLM server is still running after training ended"
        os.remove(srv_pid)
    assert "conscience.launch:" not in capfd.readouterr().err


def test_a_cancel_stops_both_and_returns_the_trainers_code(tmp_path, capfd):
    # SIGTERM to conscience.launch reaches both groups; the server ends at once, the trainer
    # takes a moment (it writes run_finished cancelled): that is a cancel, not an early server exit
    from conscience.launch import run

    started = tmp_path / "started"
    trainer = _py(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(1.5), sys.exit(143)))\n"
        "open(sys.argv[1], 'w').write('x')\n"
        "time.sleep(60)", started)
    server = _py("import time; time.sleep(60)")

    def cancel():
        _wait_for(started)
        time.sleep(0.3)  # run() installs its handlers right after starting the trainer, long before this
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=cancel, daemon=True).start()
    assert run(trainer, dict(os.environ), server, dict(os.environ)) == 143
    assert "conscience.launch:" not in capfd.readouterr().err


def test_a_cancel_of_a_launcher_whose_child_exits_1_on_sigterm_returns_143(tmp_path):
    # accelerate's torchrun agent answers a SIGTERM with a SignalException and exit code 1; the
    # cancel is still a cancel: 143, as a single trainer's (docs/runtime.md, exit codes)
    from conscience.launch import run

    started = tmp_path / "started"
    agent = _py(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))\n"
        "open(sys.argv[1], 'w').write('x')\n"
        "time.sleep(60)", started)

    def cancel():
        _wait_for(started)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=cancel, daemon=True).start()
    assert run(agent, dict(os.environ)) == 143
    # a child that ends on its own with 1 (no signal) keeps its code
    assert run(_py("import sys; sys.exit(1)"), dict(os.environ)) == 1


def test_a_stale_torch_extension_build_lock_is_removed_and_a_fresh_one_kept(tmp_path, capfd):
    # a run killed while DeepSpeed JIT-built its CPU op left torch's lock, and every later
    # DeepSpeed start on the machine waited on it for ever (seen: both ZeRO tests hung 600 s)
    from conscience.launch import clear_stale_extension_locks

    stale = tmp_path / "py311_cpu" / "deepspeed_shm_comm" / "lock"
    fresh = tmp_path / "py311_cpu" / "other_op" / "lock"
    for p in (stale, fresh):
        p.parent.mkdir(parents=True)
        p.write_text("")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    assert clear_stale_extension_locks({"TORCH_EXTENSIONS_DIR": str(tmp_path)}) == [str(stale)]
    assert not stale.exists() and fresh.exists(), "a build in progress keeps its lock"
    err = capfd.readouterr().err
    assert f"conscience.launch: removed {stale}, a torch extension build lock 60 min old" in err
    assert clear_stale_extension_locks({"TORCH_EXTENSIONS_DIR": str(tmp_path / "none")}) == []
