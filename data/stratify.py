"""Iterative stratification of multi-label data (Sechidis, Tsoumakas, Vlahavas 2011).

`iterative_split(targets, ratios, rng)` gives each sample a part (0..K-1) so that every part holds
about `ratios[k]` of the samples and of each label's positives. As in the paper's Algorithm 1:
while samples remain, take the label with the fewest remaining samples (ties at random) and hand
its samples out one at a time, each to the part that still wants the most of that label (ties: the
part that wants the most samples, then at random); every hand-out lowers the receiving part's
wanted counts of all the sample's labels. Samples without labels go last, by wanted samples alone.

The one-at-a-time hand-out of one label's samples is computed at once: the i-th sample a part
receives is taken when it still wants `wanted - i` of the label (and `wanted_samples - i` samples),
so the n samples go to the n best of those candidates (sorted by the two keys, then a random one).
Only the loop over labels (at most C rounds) is Python.
"""

from __future__ import annotations

import numpy as np


def _hand_out(label_wants: np.ndarray, sample_wants: np.ndarray, n: int,
              rng: np.random.Generator) -> np.ndarray:
    """How many of `n` samples each part receives: (K,) int, by the greedy rule above.

    `label_wants` (K,) and `sample_wants` (K,) are the parts' wanted counts before the hand-out.
    """
    k = len(sample_wants)
    step = np.arange(n)
    label_key = (label_wants[:, None] - step[None, :]).ravel()  # (K * n,) candidate i of part j
    sample_key = (sample_wants[:, None] - step[None, :]).ravel()
    tie = rng.random(k * n)
    best = np.lexsort((tie, -sample_key, -label_key))[:n]  # largest label_key, then sample_key
    return np.bincount(best // n, minlength=k)


def iterative_split(targets: np.ndarray, ratios: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Part index (N,) int64 of each sample.

    targets: (N, C) 0/1 (C may be 0); ratios: (K,) non-negative, summing to 1.
    """
    y = np.asarray(targets, dtype=bool)
    ratios = np.asarray(ratios, dtype=np.float64)
    n, c = y.shape
    label_wants = ratios[:, None] * y.sum(0)[None, :].astype(np.float64)  # (K, C)
    sample_wants = ratios * n  # (K,)
    part = np.full(n, -1, dtype=np.int64)
    left = y.any(1)
    while left.any():
        remaining = y[left].sum(0)  # (C,) samples per label among those not placed
        candidates = np.flatnonzero(remaining > 0)
        fewest = candidates[remaining[candidates] == remaining[candidates].min()]
        label = rng.choice(fewest)
        rows = np.flatnonzero(left & y[:, label])
        rows = rows[rng.permutation(len(rows))]
        counts = _hand_out(label_wants[:, label], sample_wants, len(rows), rng)
        given = np.repeat(np.arange(len(ratios)), counts)  # (len(rows),) part per shuffled row
        part[rows] = given
        label_wants -= np.stack([y[rows[given == j]].sum(0) for j in range(len(ratios))])
        sample_wants -= counts
        left[rows] = False
    rest = np.flatnonzero(part < 0)
    if len(rest):
        rest = rest[rng.permutation(len(rest))]
        counts = _hand_out(sample_wants, sample_wants, len(rest), rng)
        part[rest] = np.repeat(np.arange(len(ratios)), counts)
    return part
