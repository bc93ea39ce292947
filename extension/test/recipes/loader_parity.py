"""Load each recipe file with the runtime's own loader for its `kind:` (conscience.recipe.load_recipe,
conscience.sft.load_sft_recipe, conscience.eval.load_eval_recipe) and print, per file, the full
error message (``PATH:LINE: ...``, as a user sees it) or null. Used by loader-parity.test.ts; run
with the Python of the TRL line the recipes are written for (.venv or .venv-trl1)."""
import json
import sys
import warnings

warnings.filterwarnings("ignore")

import yaml  # noqa: E402

from conscience.eval import load_eval_recipe  # noqa: E402
from conscience.recipe import load_recipe  # noqa: E402
from conscience.sft import load_sft_recipe  # noqa: E402

ARGS = ["--use_cpu", "true", "--output_dir", "/tmp/conscience-loader-parity-out"]

out = {}
for path in sys.argv[1:]:
    try:  # only to pick the loader; a file PyYAML cannot read goes to load_recipe, which says why
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except Exception:  # noqa: BLE001
        raw = {}
    kind = raw.get("kind") if isinstance(raw, dict) else None
    try:
        if kind == "eval":
            load_eval_recipe(path)
        elif kind == "sft":
            load_sft_recipe(path, cli_args=ARGS)
        else:
            load_recipe(path, cli_args=ARGS)
        out[path] = None
    except BaseException as e:  # noqa: BLE001 - argparse raises SystemExit
        out[path] = str(e)
print(json.dumps(out))
