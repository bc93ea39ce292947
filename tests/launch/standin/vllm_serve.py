"""Stand-in for `trl vllm-serve` (which needs a GPU and vLLM): records where and how it was
started (node, CUDA_VISIBLE_DEVICES, argv, port) to $CONSCIENCE_STANDIN_DIR/server.<node>.json
(<node>: SLURM's node name, `local` outside SLURM),
then answers /health/ on --host/--port like the real server until SIGTERM. With
CONSCIENCE_STANDIN_EXIT=N it prints an error and exits N at once instead."""

import argparse
import json
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--tensor_parallel_size", type=int, default=1)
p.add_argument("--data_parallel_size", type=int, default=1)
p.add_argument("--gpu_memory_utilization", type=float, default=0.9)
p.add_argument("--host", default="0.0.0.0")
p.add_argument("--port", type=int, default=8000)
p.add_argument("--revision", default=None)
a = p.parse_args()


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path.rstrip("/") == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


if os.environ.get("CONSCIENCE_STANDIN_EXIT"):  # a server that fails to start (a bad model, vLLM missing)
    print("stand-in vllm: cannot load the model", file=sys.stderr, flush=True)
    sys.exit(int(os.environ["CONSCIENCE_STANDIN_EXIT"]))

srv = HTTPServer((a.host, a.port), Health)
record = {
    "node": os.environ.get("SLURMD_NODENAME") or "local",
    "hostname": socket.gethostname(),
    "job_id": os.environ.get("SLURM_JOB_ID"),
    "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    "argv": sys.argv[1:],
    "model": a.model,
    "tensor_parallel_size": a.tensor_parallel_size,
    "data_parallel_size": a.data_parallel_size,
    "host": a.host,
    "port": a.port,
    "pid": os.getpid(),
}
out = os.path.join(os.environ["CONSCIENCE_STANDIN_DIR"], f"server.{record['node']}.json")
with open(out + ".tmp", "w") as f:
    json.dump(record, f)
os.replace(out + ".tmp", out)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
srv.serve_forever()
