"""Pack what scripts/gpu/allocator_sweep.sh needs on a GPU host into one folder to carry
(``.gpu/``, ignored by git): a device call sends at most 64 MiB, and all-MiniLM-L6-v2 in
float32 is 91 MB.

    python scripts/gpu/allocator_pack.py --data ../shared/data/prompt-risk --out .gpu [--layers 3]

- ``enc<N>/``: the encoder's embeddings and the ``N`` layers ``train --layers N`` keeps
  (model.kept_layers: 0, 2 and 4 for 3), renumbered 0..N-1, in float16 (35 MB for 3), with its
  tokenizer files. ``config.json`` records which pretrained layers they are, so the sweep can
  refuse a config with another layer count (it would keep other layers than ``train`` does
  here, and the weights would not match when ``train --weights`` finishes them).
- ``prompt-risk.tar.xz``: the data folder's top-level ``*.jsonl`` (what ``train --data``
  reads of a folder) and its SOURCES.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "runtime"))

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def pack_encoder(out: Path, layers: int) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    from conscience.allocator.model import encoder_dir, kept_layers

    src = encoder_dir()
    cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
    total = int(cfg["num_hidden_layers"])
    keep = kept_layers(total, layers)
    state = load_file(str(src / "model.safetensors"))
    packed: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        parts = name.split(".")
        if "layer" in parts:
            i = parts.index("layer")
            if int(parts[i + 1]) not in keep:
                continue
            parts[i + 1] = str(keep.index(int(parts[i + 1])))
        packed[".".join(parts)] = (value.half() if value.is_floating_point() else value).contiguous()
    dst = out / f"enc{layers}"
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    save_file(packed, str(dst / "model.safetensors"), metadata={"format": "pt"})
    cfg.update(num_hidden_layers=len(keep), conscience_kept_layers=keep, conscience_pretrained_layers=total)
    (dst / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    for f in TOKENIZER_FILES:
        if (src / f).is_file():
            shutil.copyfile(src / f, dst / f)
    return dst


def pack_data(data: Path, out: Path) -> Path:
    if not data.is_dir():
        raise SystemExit(f"{data}: not a folder of JSONL files")
    files = sorted(p for p in data.glob("*.jsonl") if p.is_file())
    if not files:
        raise SystemExit(f"{data}: no *.jsonl files in it")
    tar = out / f"{data.name}.tar.xz"
    with tarfile.open(tar, "w:xz") as t:
        for p in files + [q for q in (data / "SOURCES.md",) if q.is_file()]:
            t.add(p, arcname=f"{data.name}/{p.name}")
    return tar


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the public prompt sets' folder (../shared/data/prompt-risk)")
    ap.add_argument("--out", type=Path, default=Path(".gpu"))
    ap.add_argument("--layers", type=int, default=3, help="the encoder layers the sweep's configs will keep")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    enc = pack_encoder(args.out, args.layers)
    tar = pack_data(args.data, args.out)
    size = sum(p.stat().st_size for p in [*enc.iterdir(), tar])
    print(f"{enc} and {tar}: {size / 2**20:.1f} MiB to carry")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
