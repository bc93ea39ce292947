"""Start `conscience.train` through `accelerate launch`, as the recipe's `launch:` section says.

    python -m conscience.launch --config RECIPE [--dry-run] [-- <flat key overrides for the trainer>]

Builds ``accelerate launch [--config_file F] --num_processes N --num_machines M [--cpu]
[--main_process_port P] -m conscience.train --config RECIPE ...`` (as an argv list, never a
shell string), runs it in its own process group and forwards SIGTERM/SIGINT/SIGHUP to the
whole group, so killing this process cancels the run on every rank (each rank writes nothing
but rank 0 writes `run_finished` cancelled). Exits with the trainer's exit code.
`--dry-run` prints the argv as JSON and exits. With `launch.cpu` and no OMP_NUM_THREADS in the
environment it sets OMP_NUM_THREADS=1 (what torchrun does for each rank anyway).

For multi-node runs (SLURM) set the per-node flags (`--machine_rank`, `--main_process_ip`)
with `--accelerate-arg` (repeatable).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from typing import Optional


def build_command(
    recipe_path: str,
    trainer_args: Optional[list[str]] = None,
    accelerate_args: Optional[list[str]] = None,
    python: Optional[str] = None,
) -> list[str]:
    """The argv that launches the trainer for `recipe_path` (reads only the `launch:` section)."""
    from .recipe import parse_section, read_recipe_yaml

    raw, _, lines = read_recipe_yaml(recipe_path)
    launch = parse_section("launch", raw.get("launch"), recipe_path, lines)
    base = os.path.dirname(os.path.abspath(recipe_path))
    py = python or sys.executable
    cmd = [py, "-m", "accelerate.commands.launch"]
    if launch.accelerate_config:
        cfg = os.path.normpath(os.path.join(base, launch.accelerate_config))
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
    cmd += ["-m", "conscience.train", "--config", os.path.abspath(recipe_path)]
    cmd += cpu_args + list(trainer_args or [])
    return cmd


def cpu_launch(recipe_path: str) -> bool:
    from .recipe import parse_section, read_recipe_yaml

    raw, _, lines = read_recipe_yaml(recipe_path)
    return parse_section("launch", raw.get("launch"), recipe_path, lines).cpu


def run(cmd: list[str], env: Optional[dict] = None) -> int:
    """Run `cmd` in a new process group; forward termination signals to the group."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)

    def forward(signum, frame):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            return proc.wait()
        except InterruptedError:  # pragma: no cover
            continue


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    trainer_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, trainer_args = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(prog="python -m conscience.launch", description="Launch conscience.train with accelerate.")
    p.add_argument("--config", required=True, help="recipe YAML")
    p.add_argument("--accelerate-arg", action="append", default=[], help="extra flag for accelerate launch (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the command as JSON and exit")
    a = p.parse_args(argv)
    from .recipe import RecipeError

    try:
        cmd = build_command(a.config, trainer_args, a.accelerate_arg)
    except RecipeError as e:
        print(f"conscience.launch: {e}", file=sys.stderr)
        return 2
    if a.dry_run:
        print(json.dumps(cmd))
        return 0
    env = dict(os.environ)
    if cpu_launch(a.config) and "OMP_NUM_THREADS" not in env:
        # torchrun sets 1 thread per process; the single-process launcher does not, and on a
        # busy machine torch's default (all cores) spin-waits: 15x slower steps measured.
        env["OMP_NUM_THREADS"] = "1"
    code = run(cmd, env)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
