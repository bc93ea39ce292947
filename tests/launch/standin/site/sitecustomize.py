"""Put on PYTHONPATH by the local launch test: `python -m trl.scripts.vllm_serve` (which needs a
GPU and vLLM, neither of which exists here) then runs the stand-in server beside this folder,
tests/launch/standin/vllm_serve.py, whatever interpreter conscience.launch starts it with.
Nothing else is changed: every other module imports as usual."""

import importlib.abc
import importlib.util
import os
import sys

_STANDIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vllm_serve.py")


class _StandinServer(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "trl.scripts.vllm_serve":
            return importlib.util.spec_from_file_location(fullname, _STANDIN)
        return None


sys.meta_path.insert(0, _StandinServer())
