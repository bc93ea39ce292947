"""Fine-tuning's batches (train.length_grouped_batches): every training row once per epoch, in a
seeded random order, with rows of similar length together so that padding does not dominate
the work (docs/allocator.md: a whole 5-epoch `train` took 56 % of the time with them)."""
import random

import torch

from conscience.allocator.train import length_grouped_batches


def _lengths(n: int, seed: int = 0) -> list[int]:
    # the pool's shape: mostly short prompts, a few truncated at 128 tokens
    r = random.Random(seed)
    return [128 if r.random() < 0.06 else r.randint(6, 60) for _ in range(n)]


def _padded(lengths: list[int], batches: list[list[int]]) -> int:
    return sum(max(lengths[i] for i in b) * len(b) for b in batches)


def test_each_row_once_per_epoch_in_batches_of_at_most_the_size():
    lengths = _lengths(1003)
    batches = length_grouped_batches(lengths, 16, torch.Generator().manual_seed(0))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1003))
    assert all(1 <= len(b) <= 16 for b in batches)
    assert sum(len(b) < 16 for b in batches) <= (1003 + 799) // 800  # one short batch per window at most


def test_padding_is_near_the_real_tokens_where_random_batches_nearly_triple_it():
    lengths = _lengths(4000)
    g = torch.Generator().manual_seed(0)
    grouped = _padded(lengths, length_grouped_batches(lengths, 16, g))
    perm = torch.randperm(4000, generator=g).tolist()
    rand = _padded(lengths, [perm[i:i + 16] for i in range(0, 4000, 16)])
    real = sum(lengths)
    assert grouped < 1.1 * real
    assert rand > 2 * real


def test_order_is_seeded_and_changes_between_epochs():
    lengths = _lengths(500)
    a = length_grouped_batches(lengths, 16, torch.Generator().manual_seed(3))
    b = length_grouped_batches(lengths, 16, torch.Generator().manual_seed(3))
    assert a == b
    g = torch.Generator().manual_seed(3)
    e1, e2 = length_grouped_batches(lengths, 16, g), length_grouped_batches(lengths, 16, g)
    assert e1 != e2
    # not sorted overall: long and short batches are interleaved
    firsts = [lengths[bt[0]] for bt in e1]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)


def test_the_training_log_says_what_grouping_saves():
    from conscience.allocator.train import padding_report

    line = padding_report(_lengths(4000), 16)
    grouped, plain = [float(x) for x in __import__("re").findall(r"([0-9.]+)x", line)]
    assert line.startswith("fine-tune batches: 4000 prompts")
    assert 1.0 <= grouped < 1.1 and plain > 2
