"""Load recipes with the real runtime + TRL 0.18.2 and print, per file, the error TRL raises
(or null). The world size is what accelerate would report for `launch.num_processes`.
Used by trl-parity.test.ts to check that the validator reproduces TRL's start-up checks."""
import json
import re
import sys
import warnings

warnings.filterwarnings("ignore")

import yaml  # noqa: E402
from trl import GRPOConfig  # noqa: E402

from conscience.recipe import RecipeError, load_recipe  # noqa: E402,F401

out = {}
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    P = int(((raw.get("launch") or {}).get("num_processes")) or 1)
    GRPOConfig.world_size = property(lambda self, P=P: P)
    try:
        load_recipe(path, cli_args=["--use_cpu", "true", "--output_dir", "/tmp/conscience-parity-out"])
        out[path] = None
    except BaseException as e:  # noqa: BLE001 - argparse raises SystemExit
        msg = str(e)
        # "PATH: message" or "PATH:LINE: message" (a check that names its key gives its line)
        m = re.match(re.escape(path) + r"(?::\d+)?: ", msg)
        out[path] = msg[m.end():] if m else msg
print(json.dumps(out))
