"""Fit several allocator trainings at once on one GPU, measure each on the validation and test
splits, and keep the best shippable one's weights (issue #11).

    python scripts/gpu/allocator_sweep.py --data DIR_OR_FILE... --out DIR \
        --config a600s0:3:600:0:5 --config a1500s0:3:1500:0:5 ... [--deadline 420]

A config is NAME:LAYERS:PER_SOURCE:SEED:FINETUNE_EPOCHS. Each one runs
``python -m conscience.allocator train --fit-only --save-weights DIR/NAME.pt --device cuda``
in its own process (each fit is small and leaves the GPU mostly idle, so they share it); a fit
still running at ``--deadline`` seconds is stopped and left out.

Each fitted network is then scored in PyTorch (float32, on the same device) the way ``train``
scores its ONNX graph: temperature fitted on validation, the unfamiliar-script census and gate,
the tier thresholds fitted on validation (evaluate.fit_policy), and the test split's figures
(evaluate.report). ``summary.json`` holds every config's pooled validation and test figures.

The winner is the config with ``LAYERS == --ship-layers`` whose validation figures fall
shortest of the five #11 targets (summed shortfall in points; validation only, never test);
its weights are split into parts of at most 15 MiB (``NAME.pt.part-aa`` ...; a GPU host's
files come back in parts), to be joined with ``cat`` and finished where the shipped toolchain
is: ``python -m conscience.allocator train ... --weights NAME.pt`` exports, quantizes, fits
the thresholds and measures as always.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
sys.path.insert(0, str(RUNTIME))

from conscience.allocator import pool  # noqa: E402 - after the path above
from conscience.allocator.evaluate import TARGETS, shortfall  # noqa: E402


def parse_config(text: str) -> dict:
    parts = text.split(":")
    if len(parts) != 5 or not parts[0].replace("-", "").replace("_", "").isalnum():
        raise SystemExit(f"--config {text!r}: need NAME:LAYERS:PER_SOURCE:SEED:FINETUNE_EPOCHS")
    try:
        layers, per_source, seed, epochs = (int(x) for x in parts[1:])
    except ValueError:
        raise SystemExit(f"--config {text!r}: LAYERS, PER_SOURCE, SEED and FINETUNE_EPOCHS are whole numbers") from None
    return {"name": parts[0], "layers": layers, "per_source": per_source, "seed": seed, "finetune_epochs": epochs}


def check_layers(encoder: Path, configs: list[dict]) -> None:
    """A packed encoder (allocator_pack.py) holds only the layers ``--layers N`` keeps; a config
    with another count would keep other pretrained layers than ``train`` does from the whole
    encoder, and its weights would load, wrongly, where ``train --weights`` finishes them."""
    cfg_file = encoder / "config.json"
    if not cfg_file.is_file():
        raise SystemExit(f"{encoder}: no config.json (pack it with scripts/gpu/allocator_pack.py)")
    kept = json.loads(cfg_file.read_text(encoding="utf-8")).get("conscience_kept_layers")
    if kept is None:
        return  # a whole encoder: every layer count keeps what train keeps
    for c in configs:
        if c["layers"] != len(kept):
            raise SystemExit(f"--config {c['name']}: {c['layers']} layers, but {encoder} holds only the {len(kept)} "
                             f"pretrained layers {kept} (pack one with scripts/gpu/allocator_pack.py --layers {c['layers']})")


def widen(src: Path, dst: Path) -> Path:
    """A copy of the encoder folder ``src`` with its weights in float32 (train fits in float32)."""
    import shutil

    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copyfile(f, dst / f.name)
    sd = load_file(str(src / "model.safetensors"))
    save_file({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, str(dst / "model.safetensors"),
              metadata={"format": "pt"})
    return dst


def fit_all(configs: list[dict], data: list[str], out: Path, device: str, deadline: float) -> dict[str, dict]:
    procs = {}
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(x for x in (str(RUNTIME), os.environ.get("PYTHONPATH")) if x))
    t0 = time.time()
    for c in configs:
        cmd = [sys.executable, "-m", "conscience.allocator", "train", "--data", *data, "--out", str(out / c["name"]),
               "--layers", str(c["layers"]), "--per-source", str(c["per_source"]), "--seed", str(c["seed"]),
               "--finetune-epochs", str(c["finetune_epochs"]), "--device", device,
               "--save-weights", str(out / f"{c['name']}.pt"), "--fit-only"]
        log = (out / f"{c['name']}.log").open("w", encoding="utf-8")
        procs[c["name"]] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=RUNTIME), log, c)
    status = {}
    while procs:
        for name, (p, log, c) in list(procs.items()):
            rc = p.poll()
            if rc is None and time.time() - t0 < deadline:
                continue
            if rc is None:
                p.kill()
                p.wait()
                rc = "stopped at the deadline"
            log.close()
            status[name] = {**c, "rc": rc, "fit_seconds": round(time.time() - t0, 1)}
            print(f"fit {name}: rc {rc} after {time.time() - t0:.0f}s", flush=True)
            del procs[name]
        time.sleep(2)
    return status


def measure(c: dict, weights: Path, rows: list[dict], device: str) -> dict:
    """train's steps 3, 5 and 6 with PyTorch scores in place of the ONNX graph's, on ``rows``
    (pool.prepare of the data, read and prepared once for every config): the temperature as
    train fits it, then train.fit_and_report, the function train itself runs for steps 5 and 6."""
    import torch

    from conscience.allocator import vocab
    from conscience.allocator.model import head_outputs, load_encoder
    from conscience.allocator.policy import AllocatorConfig
    from conscience.allocator.train import (_targets, base_tokenizer_json, embed_all, fit_and_report, fit_temperature,
                                            load_fitted, make_tokenizer)

    split = pool.splits(rows, licensed_only=True, per_source=c["per_source"], seed=c["seed"], prepared=True)
    base_json = base_tokenizer_json()
    pieces = vocab.missing_pieces([r["prompt"] for r in split["train"]], base_json, min_count=2)
    tok = make_tokenizer(128, pieces)
    net = load_fitted(weights, load_encoder(c["layers"]), len(base_json["model"]["vocab"]), pieces)

    @torch.no_grad()
    def logits(rs):
        # the embedding step train uses (same batches), so the temperature is the one train fits
        return net.head(embed_all(net, tok, [r["prompt"] for r in rs], device=device))

    va_cl, va_ca = logits(split["validation"])
    y_va, _ = _targets(split["validation"])
    temperature = fit_temperature(va_cl, y_va)

    def scores(cl, ca):
        risk, _, amb, _ = head_outputs(cl, ca, torch.tensor(temperature))
        return risk.numpy(), amb.numpy()

    fit = fit_and_report(split, *scores(va_cl, va_ca), lambda: scores(*logits(split["test"])), AllocatorConfig())
    return {"rows": {k: len(v) for k, v in split.items()}, "temperature": round(temperature, 4),
            "untrusted_scripts": fit.untrusted, "thresholds": fit.fitted["thresholds"],
            "validation": fit.validation["pooled"], "validation_shortfall": shortfall(fit.validation["pooled"]),
            "test": fit.test["pooled"],
            "test_by_language": {k: {m: v.get(m) for m in TARGETS} for k, v in fit.test.get("by_language", {}).items()}}


def write_parts(path: Path, size: int) -> list[Path]:
    """``path`` cut into ``path.part-aa``, ``-ab``, ... of at most ``size`` bytes (``cat`` joins them)."""
    blob = path.read_bytes()
    if len(blob) > 26 * 26 * size:
        raise ValueError(f"{path}: {len(blob)} bytes need more than 676 parts of {size}")
    parts = []
    for n, i in enumerate(range(0, len(blob), size)):
        p = path.with_name(f"{path.name}.part-{chr(97 + n // 26)}{chr(97 + n % 26)}")
        p.write_bytes(blob[i:i + size])
        parts.append(p)
    return parts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", action="append", required=True, type=parse_config)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--deadline", type=float, default=420.0, help="seconds the fits may take in all")
    ap.add_argument("--ship-layers", type=int, default=3, help="only configs with this many layers can win")
    ap.add_argument("--stop-by", type=float, default=520.0,
                    help="seconds from the start after which no further config is measured (the winner is still written)")
    ap.add_argument("--part-mib", type=int, default=15)
    ap.add_argument("--encoder", type=Path, default=None,
                    help="the encoder folder to use (e.g. one carried to a GPU host in float16; it is widened to float32 first)")
    args = ap.parse_args()
    start = time.time()
    names = [c["name"] for c in args.config]
    if len(set(names)) != len(names):
        raise SystemExit("--config names must differ")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.encoder is not None:
        check_layers(args.encoder, args.config)
        os.environ["CONSCIENCE_ENCODER_DIR"] = str(widen(args.encoder, args.out / "encoder"))
    data = [str(Path(p).resolve()) for p in args.data]
    rows = pool.prepare(pool.read_all([Path(p) for p in data], lambda m: None))
    summary = {"configs": fit_all(args.config, data, args.out, args.device, args.deadline)}
    for name, c in summary["configs"].items():
        w = args.out / f"{name}.pt"
        if c["rc"] != 0 or not w.is_file():
            continue
        if time.time() - start > args.stop_by:
            c["measure_error"] = "not measured: --stop-by reached"
            continue
        t = time.time()
        try:
            c.update(measure(c, w, rows, args.device))
        except Exception as e:  # noqa: BLE001 - one config's failure must not lose the others
            c["measure_error"] = f"{type(e).__name__}: {e}"
        c["measure_seconds"] = round(time.time() - t, 1)
        print(json.dumps({name: {k: c.get(k) for k in ("validation_shortfall", "validation", "test")}}), flush=True)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    ok = [c for c in summary["configs"].values() if "validation_shortfall" in c and c["layers"] == args.ship_layers]
    if ok:
        best = min(ok, key=lambda c: c["validation_shortfall"])
        summary["best"] = best["name"]
        summary["best_parts"] = [p.name for p in write_parts(args.out / f"{best['name']}.pt", args.part_mib << 20)]
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print("best:", summary.get("best"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
