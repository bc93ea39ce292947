"""python -m conscience.allocator {dataset,train,evaluate,score,bench,label} ..."""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DATA = Path(__file__).resolve().parents[1] / "data" / "allocator_prompts.jsonl"
# The shipped allocator's training settings (models/allocator/metrics.json "command").
LAYERS = 3
FINETUNE_EPOCHS = 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m conscience.allocator", description="Safety-budget allocator.")
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("dataset", help="regenerate the labelled prompt set from its fragments")
    d.add_argument("--out", type=Path, default=DATA)

    t = sub.add_parser("train", help="train on labelled prompt files, fit the budget thresholds, export ONNX")
    t.add_argument("--data", type=Path, nargs="+", default=[DATA],
                   help="JSONL files or folders of them (e.g. ../shared/data/prompt-risk and the project's own set)")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--epochs", type=int, default=300, help="head epochs (full batch)")
    t.add_argument("--max-length", type=int, default=128)
    t.add_argument("--per-source", type=int, default=600, help="at most N rows per source and label (seeded sample)")
    t.add_argument("--all-licences", action="store_true",
                   help="also learn from non-commercial, research-only, unlicensed and share-alike sources (experiments only; never for the shipped model)")
    t.add_argument("--layers", type=int, default=LAYERS, help=f"encoder layers kept of 6, evenly spaced (default {LAYERS})")
    t.add_argument("--hidden", type=int, default=256, help="width of the head's hidden layer")
    t.add_argument("--finetune-epochs", type=int, default=FINETUNE_EPOCHS,
                   help=f"fine-tune the encoder end to end for N epochs (default {FINETUNE_EPOCHS}: frozen encoder, head only)")
    t.add_argument("--cache", default=None, help="folder to cache sentence embeddings between runs")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--save-weights", type=Path, default=None, help="also save the fitted network (float16 state dict) here")
    t.add_argument("--fit-only", action="store_true", help="with --save-weights: stop after fitting (no export), e.g. on a GPU host")
    t.add_argument("--weights", type=Path, default=None, help="load the fitted network from --save-weights output instead of fitting it here")
    t.add_argument("--device", default="cpu", help="torch device for embedding and training (cpu, cuda); export and figures run on CPU")
    t.add_argument("--piece-min-count", type=int, default=2,
                   help="add a word piece for a character the encoder's vocabulary lacks when the train split has it "
                        "this often (0: add none); see conscience/allocator/vocab.py")
    t.add_argument("--keep-fp32", action="store_true", help="keep model.fp32.onnx next to model.onnx")

    fp = sub.add_parser("fit-policy", help="refit a trained folder's tier thresholds on validation and re-measure test")
    fp.add_argument("--data", type=Path, nargs="+", required=True, help="the data the folder was trained with")
    fp.add_argument("--model", type=Path, required=True)
    fp.add_argument("--per-source", type=int, default=None, help="default: what the folder's metrics.json records (600 if it says nothing)")
    fp.add_argument("--all-licences", action="store_true", default=None, help="default: what the folder's metrics.json records")
    fp.add_argument("--seed", type=int, default=None, help="default: what the folder's metrics.json records (0 if it says nothing)")
    fp.add_argument("--force", action="store_true",
                    help="refit even when the validation split's row count is not the one metrics.json records (other data)")

    e = sub.add_parser("evaluate", help="per-source and pooled figures on labelled JSONL files against the targets")
    e.add_argument("--data", nargs="+", required=True, help="JSONL files or folders of them: {prompt, label, source?}")
    e.add_argument("--format", choices=("text", "json"), default="text")
    e.add_argument("--model", default=None, help="allocator folder (default: the shipped one)")
    e.add_argument("--policy", default=None, help="JSON object of allocator: overrides")
    e.add_argument("--split", choices=("train", "validation", "test"), default=None,
                   help="only the rows of this split (held out by source; see pool.py)")

    s = sub.add_parser("score", help="score a JSONL file of {prompt, id?} lines ('-' = stdin)")
    s.add_argument("file")
    s.add_argument("--out", type=Path, default=None, help="write results here instead of stdout")
    s.add_argument("--model", default=None, help="allocator folder (default: the shipped one)")
    s.add_argument("--policy", default=None, help="JSON object of allocator: overrides, e.g. '{\"budget_deep\": 768}'")

    b = sub.add_parser("bench", help="time Python onnxruntime on the allocator; prints JSON")
    b.add_argument("--model", default=None)
    b.add_argument("--n", type=int, default=1000)
    b.add_argument("--batch", type=int, default=32)
    b.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = onnxruntime default)")
    b.add_argument("--profile", action="store_true", help="also report each operator type's share of the time (op_share)")

    lab = sub.add_parser("label", help="budget-sweep labels from a policy model")
    lab.add_argument("--model", required=True, help="policy model folder (HF causal LM)")
    lab.add_argument("--data", type=Path, required=True, help="JSONL with {prompt, id?, label?}")
    lab.add_argument("--budgets", default="0,32,64,128")
    lab.add_argument("--out", type=Path, default=None)
    lab.add_argument("--answer-tokens", type=int, default=64)
    lab.add_argument("--limit", type=int, default=None)
    lab.add_argument("--seed", type=int, default=0)
    lab.add_argument("--rewards", default="refusal,safety_format,answer_length",
                     help="comma-separated names from conscience.rewards.REWARD_FUNCS, summed")
    return p


def _out_problem(out: Path, inputs: list[str]) -> str | None:
    """Why ``out`` cannot be written (it is a folder, or one of the inputs: opening it for
    writing would empty it before it is read), or None."""
    if out.is_dir():
        return f"--out {out}: is a folder, not a file"
    for i in inputs:
        if i != "-" and out.exists() and Path(i).exists() and os.path.samefile(out, i):
            return f"--out {out}: is the input file {i}; writing there would erase the prompts before they are read"
    return None


def _encoder_max_positions() -> int:
    """The encoder's max_position_embeddings (its config.json), 512 when it cannot be read."""
    try:
        from .model import encoder_dir

        n = json.loads((encoder_dir() / "config.json").read_text(encoding="utf-8")).get("max_position_embeddings")
    except (OSError, ValueError, RuntimeError):
        return 512
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 3 else 512


def _train_problem(max_length: int, out: Path) -> str | None:
    """Why `train` cannot run with these settings (checked before reading or fitting anything,
    which may take an hour), or None."""
    top = _encoder_max_positions()
    if not 3 <= max_length <= top:
        return f"--max-length must be between 3 and {top} (the encoder's max_position_embeddings), got {max_length}"
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a folder"
    if not out.exists():
        parent = out.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            return f"--out {out}: cannot be created: {parent} is not a folder"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"--out {out}: cannot be created: {parent} is not writable"
    elif not os.access(out, os.W_OK | os.X_OK):
        return f"--out {out}: is not writable"
    return None


def policy_arg(text: str | None) -> dict | str:
    """--policy's JSON object, or why it is refused (a usage error, exit 2): not JSON, not an
    object, or a value that is NaN or infinite (Python's json reads those; JSON does not have
    them, and the TypeScript `conscience inspect --policy` refuses them the same way)."""
    if not text:
        return {}
    try:
        cfg = json.loads(text)
    except (ValueError, RecursionError):
        cfg = None
    if not isinstance(cfg, dict):
        return f"--policy must be a JSON object, got {json.dumps(text)}"
    for k, v in cfg.items():
        if isinstance(v, float) and not math.isfinite(v):
            return f"--policy: {k} must be a finite number, got {json.dumps(v)}"
    return cfg


def _stdout_gone() -> int:
    """stdout's reader left (`score F | head -1`): stop quietly, as Unix tools do, and keep
    Python's exit-time flush of stdout from failing again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


def _score(args) -> int:
    """`score`: every check (input, policy, model, --out) before --out is touched; results go
    to a temporary file in --out's folder, renamed over --out only when scoring finished, so a
    failure leaves --out as it was."""
    from .policy import load_config
    from .score import get_allocator, score_stream

    cfg = policy_arg(args.policy)
    if isinstance(cfg, str):
        print(cfg, file=sys.stderr)
        return 2
    if args.model:
        cfg["model"] = args.model
    if args.file != "-":
        path = Path(args.file)
        if not path.is_file():
            print(f"{path}: {'not a file' if path.exists() else 'no such file'}", file=sys.stderr)
            return 2
    if args.out and (why := _out_problem(args.out, [args.file])):
        print(why, file=sys.stderr)
        return 2
    loaded = load_config(cfg)
    get_allocator(loaded.model_dir())  # a model folder that cannot be loaded fails here, --out untouched
    tmp: Path | None = None
    if args.out:
        target = args.out.resolve() if args.out.is_symlink() else args.out
        if not target.parent.is_dir():
            print(f"error: --out {args.out}: No such file or directory (no folder {target.parent})", file=sys.stderr)
            return 1
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        tmp = Path(name)
        try:
            mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_umask()
            os.chmod(fd, mode)
            out = os.fdopen(fd, "w", encoding="utf-8")
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
    else:
        out = sys.stdout
    try:
        if args.file == "-":
            scored, errors = score_stream(sys.stdin.buffer, "<stdin>", out, sys.stderr, cfg)
        else:
            with Path(args.file).open("rb") as f:
                scored, errors = score_stream(f, args.file, out, sys.stderr, cfg)
        if tmp is not None:
            out.close()
            os.replace(tmp, target)
            tmp = None
        else:
            out.flush()
    finally:
        if tmp is not None:
            out.close()
            tmp.unlink(missing_ok=True)
    print(f"scored {scored} prompts, {errors} bad lines", file=sys.stderr)
    return 1 if errors else 0


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "dataset":
            from .dataset import write

            print(json.dumps(write(args.out)))
            return 0
        if args.cmd == "train":
            if why := _train_problem(args.max_length, args.out):
                print(why, file=sys.stderr)
                return 2
            from .train import train

            m = train(args.data, args.out, epochs=args.epochs, max_length=args.max_length, per_source=args.per_source,
                      licensed_only=not args.all_licences, keep_fp32=args.keep_fp32, cache=args.cache,
                      finetune_epochs=args.finetune_epochs, layers=args.layers, hidden=args.hidden, seed=args.seed, device=args.device,
                      save_weights=args.save_weights, fit_only=args.fit_only, weights=args.weights,
                      piece_min_count=args.piece_min_count, log=lambda s: print(s, file=sys.stderr))
            from .evaluate import text_report

            print(text_report(m["test"]) if "test" in m else json.dumps(m))
            return 0
        if args.cmd == "fit-policy":
            from .evaluate import text_report
            from .train import RefitRefused, refit_policy

            try:
                m = refit_policy(args.data, args.model, per_source=args.per_source,
                                 licensed_only=None if args.all_licences is None else not args.all_licences,
                                 seed=args.seed, log=lambda s: print(s, file=sys.stderr), force=args.force)
            except RefitRefused as e:
                print(f"fit-policy: {e}", file=sys.stderr)
                return 2
            print(text_report(m["test"]))
            return 0
        if args.cmd == "evaluate":
            from .evaluate import main_evaluate

            return main_evaluate(args.data, args.format, args.model, args.policy, sys.stdout, sys.stderr, args.split)
        if args.cmd == "score":
            return _score(args)
        if args.cmd == "bench":
            from .bench import bench

            print(json.dumps(bench(args.model, args.n, args.batch, args.threads or None, profile=args.profile)))
            return 0
        if args.cmd == "label":
            from .label import label

            if args.out and (why := _out_problem(args.out, [str(args.data)])):
                print(why, file=sys.stderr)
                return 2
            budgets = [int(x) for x in args.budgets.split(",") if x.strip()]
            return label(args.model, args.data, budgets, args.out, answer_tokens=args.answer_tokens,
                         limit=args.limit, seed=args.seed,
                         reward_names=[x.strip() for x in args.rewards.split(",") if x.strip()])
    except BrokenPipeError:
        return _stdout_gone()
    except (ValueError, FileNotFoundError, TypeError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a file that cannot be opened or written (permissions, a full disk)
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 2
