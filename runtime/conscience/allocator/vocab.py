"""Word pieces for the characters the encoder's English vocabulary has none for.

all-MiniLM-L6-v2 reads text through BERT's uncased English WordPiece vocabulary (30,522
pieces). It has few Chinese characters: most characters of a Chinese prompt became ``[UNK]``,
so a Chinese prompt looked to the model like a row of unknowns, whatever it asked. Some
Devanagari and Thai letters are missing too, and WordPiece turns a whole word into ``[UNK]``
when one of its letters has no piece.

``train`` adds a piece for every character of the train split that has none, when it occurs
at least ``min_count`` times: ``c`` where the character starts a word (every Chinese character
is a word of its own after BERT's normalizer), ``##c`` inside a word. Each new piece gets an
embedding row that starts as ``[UNK]``'s and is learned in fine-tuning (``ExtendedEmbedding``:
its own learning rate, the pretrained rows keep theirs). The pieces go into the shipped
``tokenizer.json`` as ordinary vocabulary entries with ids after the base ones, so Python and
TypeScript, which both read that file, tokenize the same way. WordPiece matches the longest
piece first, so a word that had no ``[UNK]`` before tokenizes exactly as before: only words
that were ``[UNK]`` change.
"""
from __future__ import annotations

import collections
import json
from typing import Iterable

import torch
from torch import nn

UNK = "[UNK]"


def missing_pieces(texts: Iterable[str], tokenizer_json: dict, min_count: int = 2) -> list[str]:
    """The pieces ``c`` / ``##c`` that the vocabulary lacks for characters of ``texts``,
    seen at least ``min_count`` times (none when it is 0 or less), most frequent first (ties in
    the pieces' text order): the order is a function of the texts alone, so a rerun adds the
    same ids."""
    from tokenizers import Tokenizer

    if min_count <= 0:
        return []

    tok = Tokenizer.from_str(json.dumps(tokenizer_json))
    vocab = tokenizer_json["model"]["vocab"]
    limit = tokenizer_json["model"].get("max_input_chars_per_word", 100)
    prefix = tokenizer_json["model"].get("continuing_subword_prefix", "##")
    counts: collections.Counter[str] = collections.Counter()
    for text in texts:
        norm = tok.normalizer.normalize_str(text)
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(norm):
            if len(word) > limit:
                continue  # WordPiece gives such a word [UNK] whatever its pieces
            for i, ch in enumerate(word):
                piece = ch if i == 0 else prefix + ch
                if piece not in vocab:
                    counts[piece] += 1
    keep = [p for p, n in counts.items() if n >= min_count]
    return sorted(keep, key=lambda p: (-counts[p], p))


def extend(tokenizer_json: dict, pieces: list[str]) -> dict:
    """A copy of the tokenizer with ``pieces`` appended to its vocabulary (ids from its size)."""
    out = json.loads(json.dumps(tokenizer_json))
    vocab = out["model"]["vocab"]
    start = len(vocab)
    if set(vocab.values()) != set(range(start)):
        raise ValueError("the base vocabulary's ids are not 0..n-1")
    for i, p in enumerate(pieces):
        if p in vocab:
            raise ValueError(f"piece {p!r} is already in the vocabulary")
        vocab[p] = start + i
    return out


class ExtendedEmbedding(nn.Module):
    """The pretrained word-embedding table plus rows for the added pieces, kept as two
    parameters so fine-tuning can give the new rows their own learning rate. ``merged()`` is
    the one ``nn.Embedding`` that is exported and saved."""

    def __init__(self, base: nn.Embedding, added: int, unk_id: int):
        super().__init__()
        self.base = base
        init = base.weight.detach()[unk_id].expand(added, -1).clone()
        self.added = nn.Parameter(init)

    @property
    def weight(self) -> torch.Tensor:
        return torch.cat([self.base.weight, self.added], dim=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(ids, self.weight, padding_idx=self.base.padding_idx)

    def merged(self) -> nn.Embedding:
        w = self.weight.detach().clone()
        emb = nn.Embedding(w.shape[0], w.shape[1], padding_idx=self.base.padding_idx)
        emb.weight.data.copy_(w)
        return emb


def grow(encoder: nn.Module, added: int, unk_id: int) -> ExtendedEmbedding | None:
    """Give ``encoder`` (a BERT model) ``added`` new word-embedding rows, each starting as the
    ``[UNK]`` row; returns the ExtendedEmbedding now in place (None when nothing is added)."""
    if added <= 0:
        return None
    emb = encoder.embeddings.word_embeddings
    if isinstance(emb, ExtendedEmbedding):
        raise ValueError("the encoder's vocabulary was already extended")
    ext = ExtendedEmbedding(emb, added, unk_id)
    encoder.embeddings.word_embeddings = ext
    encoder.config.vocab_size = emb.num_embeddings + added
    return ext


def merge(encoder: nn.Module) -> None:
    """Replace an ExtendedEmbedding by the single table it stands for (export, save)."""
    emb = encoder.embeddings.word_embeddings
    if isinstance(emb, ExtendedEmbedding):
        encoder.embeddings.word_embeddings = emb.merged()


def resize_for(encoder: nn.Module, vocab_size: int) -> None:
    """Make room for a saved network's table (``--weights``): rows past the pretrained ones
    are overwritten by the load."""
    emb = encoder.embeddings.word_embeddings
    if emb.num_embeddings == vocab_size:
        return
    if vocab_size < emb.num_embeddings:
        raise ValueError(f"saved vocabulary ({vocab_size}) is smaller than the encoder's ({emb.num_embeddings})")
    new = nn.Embedding(vocab_size, emb.embedding_dim, padding_idx=emb.padding_idx)
    new.weight.data[: emb.num_embeddings] = emb.weight.data
    encoder.embeddings.word_embeddings = new
    encoder.config.vocab_size = vocab_size
