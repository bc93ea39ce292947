"""The runtime as a GPU host installs it (`pip install --no-deps ./runtime`, docs/runtime.md):
a wheel built from runtime/ holds every file the package reads at run time, and a copy installed
from it imports and renders the prompt template (template.json is read at import)."""
import os
import shutil
import subprocess
import sys
import zipfile

RUNTIME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_wheel_holds_the_data_the_runtime_reads_and_imports_from_it(tmp_path):
    # from a clean copy, as a host gets it: a checkout's egg-info (left by the editable install)
    # lists every file and would hide what the package data leaves out
    src = tmp_path / "runtime"
    shutil.copytree(RUNTIME, src, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__", ".pytest_cache", "tests"))
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = wheels.glob("conscience-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # every non-Python file of the package, as the source tree has them
    pkg = os.path.join(RUNTIME, "conscience")
    data = {os.path.relpath(os.path.join(d, f), RUNTIME).replace(os.sep, "/")
            for d, _, fs in os.walk(pkg) if "__pycache__" not in d for f in fs if not f.endswith((".py", ".pyc"))}
    assert {"conscience/template.json", "conscience/data/traces/safety_traces.jsonl", "conscience/data/safety_prompts.jsonl",
            "conscience/data/refusal_head.json"} <= data
    assert data <= names, f"missing from the wheel: {sorted(data - names)}"
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import conscience, conscience.template as t, conscience.prompt_sets as p, conscience.sft as s, os; "
            "assert conscience.__file__.startswith(sys.argv[1]), conscience.__file__; "
            "assert os.path.exists(p.BUNDLED_PATH) and os.path.exists(s.BUNDLED_TRACES_PATH); print(t.__name__)")
    r = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
