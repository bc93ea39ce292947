"""Start `conscience.train` through `accelerate launch`, as the recipe's `launch:` section says.

    python -m conscience.launch --config RECIPE [--dry-run] [-- <flat key overrides for the trainer>]

Builds ``accelerate launch [--config_file F] --num_processes N --num_machines M [--cpu]
[--main_process_port P] -m conscience.train --config RECIPE ...`` (as an argv list, never a
shell string), runs it in its own process group and forwards SIGTERM/SIGINT/SIGHUP to the
whole group, so killing this process cancels the run on every rank (each rank writes nothing
but rank 0 writes `run_finished` cancelled). Exits with the trainer's exit code.
`--dry-run` prints the argv as JSON and exits; `--plan` prints everything that would start.
Before any of these the recipe's sections and keys are checked as the trainer reads them
(names, types, ranges: :func:`conscience.recipe.check_recipe_keys`); an unusable one is one
`FILE:LINE` error and exit code 2.
With `launch.cpu` and no OMP_NUM_THREADS in the environment it sets OMP_NUM_THREADS=1 (what
torchrun does for each rank anyway). With `launch.vllm_server` on one machine it also starts
`python -m trl.scripts.vllm_serve` on the last `vllm_server_gpus` GPUs, on the recipe's
`vllm_server_port`, gives training the others, points the trainer at it and stops it when
training ends (see :func:`plan`); a server that ends first stops training, with one
`conscience.launch:` line on stderr and a non-zero exit code (see :func:`run`).

For multi-node runs (SLURM) set the per-node flags (`--machine_rank`, `--main_process_ip`)
with `--accelerate-arg` (repeatable).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Optional


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the kernel's pick) and no launch on this machine has
    claimed (see :func:`claim_port`), this one included (its vLLM server's port is not bound
    yet either), for the rendezvous of a one-machine run."""
    for _ in range(64):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _CLAIMS and claim_port(port, unknown=False):
            return port
    return port  # (64 kernel picks all claimed: not seen; the bind is the last word)


# Ports this process has claimed: port -> the open lock file (held until the process ends).
_CLAIMS: dict[int, int] = {}


def _claims_dir() -> str:
    """Where launches on this machine claim ports: one folder for every user (ports are the
    machine's), sticky like /tmp so a user's claim files are theirs."""
    base = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    d = os.path.join(base, "conscience-ports")
    try:
        os.mkdir(d)
        os.chmod(d, 0o1777)
    except FileExistsError:
        pass
    return d


def claim_port(port: int, unknown: bool = True) -> bool:
    """Claims `port` for this process until it ends: False when another live launch on this
    machine holds it.

    A port found free is not yet bound: the vLLM server binds its port only once the model has
    loaded (minutes), so a second launch in between found the same port free, and its trainer
    then talked to (and pushed its weights into) the first run's server, or its own server
    failed to bind after loading. A claim is an flock on `<tmp>/conscience-ports/PORT.lock`,
    released by the kernel when the process ends (no stale claims after a crash). The file is
    made readable by every user whatever the umask (another user's launch opens it to test the
    lock), and an existing one is opened without O_CREAT (fs.protected_regular refuses O_CREAT
    on another user's file in a sticky folder). When the claim cannot be checked (an unwritable
    /tmp, a file this user may not read) the result is `unknown`: True where the caller names
    the port itself (the bind check still applies), False where it is choosing one."""
    import fcntl

    if port in _CLAIMS:
        return True
    path = os.path.join(_claims_dir(), f"{port}.lock")
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.fchmod(fd, 0o644)
        except FileExistsError:  # made meanwhile by another launch
            return claim_port(port, unknown)
        except OSError:
            return unknown
    except OSError:
        return unknown
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    except OSError:
        os.close(fd)
        return unknown
    _CLAIMS[port] = fd
    return True


DEFAULT_SERVER_PORT = 8000


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on host:port now (SO_REUSEADDR, as uvicorn binds: a port
    left in TIME_WAIT counts as free, one somebody listens on does not)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _server_port(raw: dict, recipe_path: str, lines: dict) -> int:
    """The port of the vLLM server started on this machine: the recipe's `vllm_server_port`
    (an error naming the file and line when it is no port number, or when something already
    listens there: the trainer would talk to that other program), else 8000 when free, else a
    free port from the kernel (two launches at once on one machine never share a server)."""
    from .recipe import RecipeError

    where = f"{recipe_path}:{lines.get('vllm_server_port', '?')}"
    value = raw.get("vllm_server_port")
    if value is None:
        return DEFAULT_SERVER_PORT if _port_free(DEFAULT_SERVER_PORT) and claim_port(DEFAULT_SERVER_PORT, unknown=False) else free_port()
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)  # TRL's argparse reads `"8001"` as 8001, and so does the launcher (scripts.ts)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise RecipeError(f"{where}: vllm_server_port must be a port number (1-65535), got {value!r}")
    if not _port_free(value):
        raise RecipeError(
            f"{where}: vllm_server_port {value} is in use on this machine: another program listens there, and the "
            f"trainer would talk to it instead of this run's vLLM server; choose a free port or stop that program"
        )
    if not claim_port(value):
        raise RecipeError(
            f"{where}: vllm_server_port {value} is taken by another run starting on this machine (its vLLM server "
            f"binds the port once its model has loaded), and this run's trainer would talk to that run's server; "
            f"choose another port, or leave vllm_server_port out to get a free one"
        )
    return value


def build_command(
    recipe_path: str,
    trainer_args: Optional[list[str]] = None,
    accelerate_args: Optional[list[str]] = None,
    python: Optional[str] = None,
    overrides: Optional[dict] = None,
) -> list[str]:
    """The argv that launches the trainer for `recipe_path` (reads only the `launch:` section).

    `overrides` (num_processes, num_machines, main_process_port) are the topology planner's
    decisions (extension/src/core/launch/topology.ts, passed by the sbatch script): they win
    over the recipe's launch: values, so accelerate's mode (--multi_gpu/--cpu) follows them.
    """
    from .recipe import RECIPE_KINDS, check_accelerate_config, parse_section, read_recipe_yaml, recipe_kind

    raw, _, lines = read_recipe_yaml(recipe_path)
    launch = parse_section("launch", raw.get("launch"), recipe_path, lines)
    for k, v in (overrides or {}).items():
        if v is not None:
            setattr(launch, k, v)
    py = python or sys.executable
    cmd = [py, "-m", "accelerate.commands.launch"]
    if launch.accelerate_config:  # missing or unparsable: the recipe's line now, not accelerate's traceback later
        cfg = check_accelerate_config(launch.accelerate_config, recipe_path, lines.get("launch.accelerate_config"))
        cmd += ["--config_file", cfg]
    cmd += ["--num_processes", str(launch.num_processes), "--num_machines", str(launch.num_machines)]
    cpu_args: list[str] = []
    if launch.cpu:
        # `accelerate launch --cpu` starts ONE process (its multi-CPU mode expects mpirun). For
        # several CPU processes use the torchrun launcher (--multi_gpu) and tell the trainer to
        # stay on CPU: accelerate then runs MULTI_CPU DDP over gloo.
        cpu_args = ["--use_cpu", "true"]
        if launch.num_processes > 1 or launch.num_machines > 1:
            cmd += ["--multi_gpu"]
        else:
            cmd += ["--cpu"]
    elif (launch.num_processes > 1 or launch.num_machines > 1) and not launch.accelerate_config:
        cmd += ["--multi_gpu"]
    if not launch.accelerate_config:
        cmd += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    if launch.main_process_port is not None:
        cmd += ["--main_process_port", str(launch.main_process_port)]
    cmd += list(accelerate_args or [])
    cmd += ["-m", RECIPE_KINDS[recipe_kind(raw, recipe_path, lines)], "--config", os.path.abspath(recipe_path)]
    cmd += cpu_args + list(trainer_args or [])
    return cmd


def _visible_gpus(env: dict) -> list[str]:
    """GPU ids this node may use: CUDA_VISIBLE_DEVICES, else one per `nvidia-smi -L` line."""
    vis = env.get("CUDA_VISIBLE_DEVICES")
    if vis is not None:
        return [g.strip() for g in vis.split(",") if g.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def plan(
    recipe_path: str,
    trainer_args: Optional[list[str]] = None,
    accelerate_args: Optional[list[str]] = None,
    env: Optional[dict] = None,
    server_port: Optional[int] = None,
    overrides: Optional[dict] = None,
    no_server: bool = False,
) -> dict:
    """Everything `main` will start: {"train": argv, "train_env": {...}, "server": argv|None, "server_env": {...}}.

    With `launch.vllm_server` on one machine, the last `vllm_server_gpus` visible GPUs run
    `python -m trl.scripts.vllm_serve` (TRL's `trl vllm-serve`) and training gets the others;
    the trainer is told `--vllm_server_host 127.0.0.1 --vllm_server_port P`. P is `server_port`,
    else the recipe's `vllm_server_port` (refused when something listens there), else 8000 when
    free, else a free port. With several
    machines the server is not started here (run it on its own node, e.g. SLURM's last one,
    and pass `--vllm_server_host`); `no_server` says the caller (the sbatch script, as the
    topology planner placed it) started it already.

    When neither the recipe nor `overrides` give `main_process_port` on one machine, a free
    port is chosen, so two launches at once on one machine do not both take 29500.
    """
    from .recipe import RecipeError, _resolve_relative, parse_section, read_recipe_yaml

    env = dict(os.environ if env is None else env)
    raw, _, lines = read_recipe_yaml(recipe_path)
    launch = parse_section("launch", raw.get("launch"), recipe_path, lines)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    for k, v in overrides.items():
        setattr(launch, k, v)
    trainer_args = list(trainer_args or [])
    result: dict = {"train_env": {}, "server": None, "server_env": {}}
    if launch.cpu and "OMP_NUM_THREADS" not in env:
        # torchrun sets 1 thread per process; the single-process launcher does not, and on a
        # busy machine torch's default (all cores) spin-waits: 15x slower steps measured.
        result["train_env"]["OMP_NUM_THREADS"] = "1"
    if launch.vllm_server and raw.get("vllm_server_base_url"):
        # TRL ignores vllm_server_host/port when a base URL is set: the trainer would talk to that URL, not to our server
        raise RecipeError(
            f"{recipe_path}:{lines.get('vllm_server_base_url', '?')}: vllm_server_base_url sends the trainer to "
            f"{raw['vllm_server_base_url']} instead of the vLLM server that launch.vllm_server starts; remove it "
            f"(the launcher points the trainer at its own server)"
        )
    if launch.vllm_server and launch.num_machines == 1 and not no_server:
        gpus = _visible_gpus(env)
        need = launch.vllm_server_gpus
        if need != launch.vllm_tensor_parallel_size * launch.vllm_data_parallel_size:
            raise RecipeError(
                f"{recipe_path}:{lines.get('launch.vllm_server_gpus', '?')}: launch.vllm_server_gpus ({need}) must equal "
                f"vllm_tensor_parallel_size x vllm_data_parallel_size "
                f"({launch.vllm_tensor_parallel_size} x {launch.vllm_data_parallel_size})"
            )
        if len(gpus) < need + launch.num_processes:
            raise RecipeError(
                f"{recipe_path}:{lines.get('launch', '?')}: launch needs {launch.num_processes} training GPUs + {need} "
                f"for the vLLM server, this machine has {len(gpus)} ({','.join(gpus) or 'none'})"
            )
        server_gpus, train_gpus = gpus[len(gpus) - need:], gpus[: len(gpus) - need]
        model = _resolve_relative(raw.get("model_name_or_path"), os.path.dirname(os.path.abspath(recipe_path)))
        if not model:
            raise RecipeError(f"{recipe_path}: launch.vllm_server needs model_name_or_path")
        port = server_port if server_port is not None else _server_port(raw, recipe_path, lines)
        result["server"] = [
            sys.executable, "-m", "trl.scripts.vllm_serve",
            f"--model={model}",  # one argument: a value starting with '-' is not read as an option
            "--tensor_parallel_size", str(launch.vllm_tensor_parallel_size),
            "--data_parallel_size", str(launch.vllm_data_parallel_size),
            "--gpu_memory_utilization", str(launch.vllm_gpu_memory_utilization),
            "--host", "127.0.0.1",
            "--port", str(port),
        ]
        if raw.get("model_revision"):
            result["server"] += ["--revision", str(raw["model_revision"])]
        result["server_env"] = {"CUDA_VISIBLE_DEVICES": ",".join(server_gpus)}
        result["train_env"]["CUDA_VISIBLE_DEVICES"] = ",".join(train_gpus)
        trainer_args = ["--vllm_server_host", "127.0.0.1", "--vllm_server_port", str(port)] + trainer_args
    if launch.main_process_port is None and launch.num_machines == 1:
        overrides["main_process_port"] = free_port()
    result["train"] = build_command(recipe_path, trainer_args, accelerate_args, overrides=overrides)
    return result


# a JIT build of a torch extension (DeepSpeed's CPU ops) takes seconds to a few minutes
STALE_LOCK_S = 600


def clear_stale_extension_locks(env: Optional[dict] = None, max_age_s: float = STALE_LOCK_S) -> list[str]:
    """Removes torch extension build locks older than `max_age_s` and returns their paths.

    torch builds an extension (DeepSpeed's shm op, on CPU) under a `lock` file it deletes when the
    build ends; a process killed mid-build leaves it, and every later build of that extension on
    the machine waits for it for ever (torch.utils.file_baton): a DeepSpeed run then hangs at
    start with no output. A lock older than any build is left over: it is removed, with a line on
    stderr naming it."""
    env = os.environ if env is None else env
    root = env.get("TORCH_EXTENSIONS_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "torch_extensions")
    removed = []
    now = time.time()
    for pattern in ("*/lock", "*/*/lock"):
        for lock in glob.glob(os.path.join(root, pattern)):
            try:
                age = now - os.stat(lock).st_mtime
                if age < max_age_s:
                    continue
                os.remove(lock)
            except OSError:
                continue
            removed.append(lock)
            print(f"conscience.launch: removed {lock}, a torch extension build lock {age / 60:.0f} min old: a run killed while "
                  f"it built the extension left it, and every later build (DeepSpeed's ops) would wait on it for ever",
                  file=sys.stderr, flush=True)
    return removed


def _stop_group(p: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to `p`'s process group, SIGKILL to what is left of it after `grace_s` seconds."""
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        p.wait()
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        p.poll()  # reaps the leader: a group of zombies only reads as gone once it is reaped
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            break
        except PermissionError:  # a member that changed its user: still there
            pass
        time.sleep(0.1)
    else:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    p.wait()


def _ended(code: int) -> str:
    """'exited with code 3', or 'was killed by SIGKILL' (Popen's negative return codes)."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def run(
    cmd: list[str],
    env: Optional[dict] = None,
    server: Optional[list[str]] = None,
    server_env: Optional[dict] = None,
    grace_s: float = 30.0,
    poll_s: float = 0.5,
) -> int:
    """Run `cmd` in a new process group; forward termination signals to the group.

    `server` (the vLLM server) runs in its own group beside it and is stopped when `cmd` ends.
    When the server ends first (whatever its code) while `cmd` still runs, training would only
    wait for it (TRL waits `vllm_server_timeout`, 240 s, then fails): one `conscience.launch:`
    line says so on stderr, `cmd`'s group is stopped (SIGTERM, SIGKILL after `grace_s`) and the
    server's code is returned (1 when it exited 0; negative for a signal, as Popen's). After a
    forwarded signal the server's end is expected: `cmd`'s own code is returned, or 128 + the
    signal when `cmd` ended non-zero for it (accelerate's agent exits 1 for a SIGTERM: a cancel
    reads 143). The server is polled every `poll_s` seconds.
    """
    reason_dir = tempfile.mkdtemp(prefix="conscience-launch-") if server else None
    if reason_dir:  # where the trainer finds why it was stopped (conscience.train: run_finished failed, not cancelled)
        env = dict(os.environ if env is None else env, CONSCIENCE_STOP_REASON=os.path.join(reason_dir, "stop_reason"))
    try:
        srv = subprocess.Popen(server, env=server_env, start_new_session=True) if server else None
        try:
            proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        except BaseException:  # the trainer cannot start (a bad interpreter): the server is not left behind
            if srv is not None:
                _stop_group(srv, 30.0)
            raise
    except BaseException:
        if reason_dir:
            shutil.rmtree(reason_dir, ignore_errors=True)
        raise
    stopping = False
    forwarded = 0

    def forward(signum, frame):
        nonlocal stopping, forwarded
        stopping = True
        forwarded = forwarded or signum
        for p in (proc, srv):
            if p is None:
                continue
            try:
                os.killpg(p.pid, signum)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        while srv is not None and not stopping:
            code = proc.poll()
            if code is not None:
                return code
            scode = srv.poll()
            if scode is not None and not stopping:  # (a server ended by a forwarded signal is no early exit)
                argv = shlex.join(["python"] + server[1:]).replace("\n", "\\n")  # one line, whatever the values hold
                said = f"the vLLM server ({argv}) {_ended(scode)} before training ended"
                print(f"conscience.launch: {said}; stopping training. Its own error is above in this log.", file=sys.stderr, flush=True)
                with open(env["CONSCIENCE_STOP_REASON"], "w", encoding="utf-8") as f:
                    f.write(f"{said}; its own error is in this run's log\n")
                _stop_group(proc, grace_s)
                return scode or 1
            time.sleep(poll_s)
        while True:
            try:
                code = proc.wait()
            except InterruptedError:  # pragma: no cover
                continue
            # stopped by a forwarded signal: the signal's code (143 for SIGTERM, a cancel), as a
            # single trainer exits; accelerate's torchrun agent exits 1 with a SignalException
            # for it, which made every cancelled multi-process run read "exit 1"
            if forwarded and code > 0 and code != 128 + forwarded:
                return 128 + forwarded
            return code
    finally:
        if srv is not None:  # also when the server itself has exited: what it started in its group (vLLM's engine workers) holds the GPUs
            _stop_group(srv, 30.0)
        if reason_dir:
            shutil.rmtree(reason_dir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _int_in(lo: int, hi: Optional[int] = None):
    """An argparse type: a whole number from lo (to hi); anything else is a usage error naming the range."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = None
        if n is None or n < lo or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(f"must be a whole number {f'from {lo} to {hi}' if hi is not None else f'>= {lo}'}, got {text!r}")
        return n
    parse.__name__ = "int"
    return parse


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    trainer_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, trainer_args = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(prog="python -m conscience.launch", description="Launch conscience.train with accelerate.")
    p.add_argument("--config", required=True, help="recipe YAML")
    p.add_argument("--accelerate-arg", action="append", default=[], help="extra flag for accelerate launch (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the accelerate argv as JSON and exit (no GPU planning)")
    p.add_argument("--plan", action="store_true", help="print everything that would start (train, vLLM server, env) as JSON and exit")
    p.add_argument("--vllm-port", type=_int_in(1, 65535), default=None, help="port of the vLLM server started for launch.vllm_server (default: the recipe's vllm_server_port, else 8000 when free, else a free port)")
    # the topology planner's decisions (the sbatch script passes them): they win over the recipe
    p.add_argument("--num-processes", type=_int_in(1), default=None, help="total training processes (overrides launch.num_processes)")
    p.add_argument("--num-machines", type=_int_in(1), default=None, help="training machines (overrides launch.num_machines)")
    p.add_argument("--machine-rank", type=_int_in(0), default=None, help="this machine's rank (accelerate --machine_rank)")
    p.add_argument("--main-address", default=None, help="address of the rank-0 machine (accelerate --main_process_ip)")
    p.add_argument("--main-port", type=_int_in(1, 65535), default=None, help="rendezvous port (overrides launch.main_process_port)")
    p.add_argument("--no-server", action="store_true", help="do not start a vLLM server here (it runs elsewhere)")
    a = p.parse_args(argv)
    if a.machine_rank is not None and a.num_machines is not None and a.machine_rank >= a.num_machines:
        p.error(f"argument --machine-rank: {a.machine_rank} is not a rank of --num-machines {a.num_machines} (ranks are 0 to {a.num_machines - 1})")
    overrides = {"num_processes": a.num_processes, "num_machines": a.num_machines, "main_process_port": a.main_port}
    if a.machine_rank is not None:
        a.accelerate_arg.append(f"--machine_rank={a.machine_rank}")
    if a.main_address:
        a.accelerate_arg.append(f"--main_process_ip={a.main_address}")
    from .recipe import RecipeError, check_recipe_keys

    try:
        # what the trainer would refuse at load on any machine, refused here with its FILE:LINE
        # before anything starts (one line, exit 2), not once per rank under accelerate's traceback
        check_recipe_keys(a.config)
        if a.dry_run:  # the accelerate argv only: works on any machine (no GPU planning)
            print(json.dumps(build_command(a.config, trainer_args, a.accelerate_arg, overrides=overrides)))
            return 0
        pl = plan(a.config, trainer_args, a.accelerate_arg, server_port=a.vllm_port, overrides=overrides, no_server=a.no_server)
    except RecipeError as e:
        print(f"conscience.launch: {e}", file=sys.stderr)
        return 2
    if a.plan:
        print(json.dumps(pl, indent=2))
        return 0
    env = dict(os.environ, **pl["train_env"])
    clear_stale_extension_locks(env)
    server_env = dict(os.environ, **pl["server_env"]) if pl["server"] else None
    code = run(pl["train"], env, pl["server"], server_env)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
