"""A checkpoint when SLURM warns that the job is about to stop (time limit or preemption).

The batch script asks SLURM for USR1 some time before the end (`sbatch --signal=B:USR1@120`)
and, when it comes, creates the file named by CONSCIENCE_CHECKPOINT_REQUEST. This callback
looks for that file after every step; when any rank sees it, every rank saves (the decision
is all-reduced, so ZeRO-3's collective save is entered by all of them), and rank 0 removes the
request. The requeued job then resumes from that checkpoint (train.py resumes from the last
`checkpoint-*` in output_dir).
"""

from __future__ import annotations

import os
from typing import Optional


def checkpoint_on_request_callback(path: Optional[str] = None):
    """A TrainerCallback, or None when no request file is configured (runs outside SLURM)."""
    path = path or os.environ.get("CONSCIENCE_CHECKPOINT_REQUEST")
    if not path:
        return None
    from transformers import TrainerCallback

    class CheckpointOnRequest(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            want = os.path.exists(path)
            try:
                import torch
                import torch.distributed as dist

                if dist.is_available() and dist.is_initialized():
                    t = torch.tensor([1 if want else 0], device=args.device)
                    dist.all_reduce(t, op=dist.ReduceOp.MAX)
                    want = bool(t.item())
            except (ImportError, RuntimeError):  # pragma: no cover - no process group: this rank decides
                pass
            if want:
                control.should_save = True

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass

    return CheckpointOnRequest()
