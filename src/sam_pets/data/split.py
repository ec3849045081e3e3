"""Seeded, stratified train/val splits and tiny subsets."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np


def stratum_key(record: dict) -> str:
    """Stratum of a manifest record: breed, else species, else first object's category."""
    for key in ("breed", "species"):
        if record.get(key):
            return str(record[key])
    objects = record.get("objects") or []
    if objects and objects[0].get("category"):
        return str(objects[0]["category"])
    return ""


def stratified_split(keys: Sequence[str], val_fraction: float, seed: int = 0) -> list[str]:
    """Assign each item to "train" or "val", keeping each stratum's share close to the target.

    The number of val items is ``round(N * val_fraction)`` (at least 1 and at most N - 1 when
    0 < val_fraction < 1 and N >= 2). Each stratum gets ``floor(n_i * val_fraction)`` of them
    and the rest go to the strata with the largest remainders (ties broken by the seed), so
    rare strata are not all forced into train. Which items of a stratum go to val is a seeded
    shuffle. The result depends only on ``keys``, ``val_fraction`` and ``seed``.

    Args:
        keys: Stratum of each item (breed, species...); use "" when unknown.
        val_fraction: Target fraction in [0, 1].
        seed: Seed of the shuffle.

    Returns:
        "train" or "val" for each item, in input order.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    n = len(keys)
    n_val = _total_val(n, val_fraction)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    names = sorted(groups)
    rng = np.random.default_rng(seed)
    quota = _allocate(np.array([len(groups[k]) for k in names]), val_fraction, n_val, rng)
    out = ["train"] * n
    for k, q in zip(names, quota, strict=True):
        members = groups[k]
        for j in rng.permutation(len(members))[:q]:
            out[members[j]] = "val"
    return out


def _total_val(n: int, frac: float) -> int:
    n_val = int(round(n * frac))
    if n >= 2 and 0.0 < frac < 1.0:
        n_val = min(max(n_val, 1), n - 1)
    return n_val


def _allocate(sizes: np.ndarray, frac: float, total: int, rng: np.random.Generator) -> np.ndarray:
    """Largest-remainder allocation of ``total`` over strata of the given sizes."""
    exact = sizes * frac
    quota = np.minimum(np.floor(exact).astype(int), sizes)
    rest = total - int(quota.sum())
    if rest > 0:
        tiebreak = rng.random(len(sizes))
        order = np.lexsort((tiebreak, -(exact - quota)))
        for i in order:
            if rest == 0:
                break
            if quota[i] < sizes[i]:
                quota[i] += 1
                rest -= 1
    return quota


def tiny_subset(names: Sequence[str], keys: Sequence[str], n: int) -> list[str]:
    """Up to ``n`` names taken round-robin over strata (sorted), so each stratum shows up.

    Args:
        names: Item names.
        keys: Stratum of each item.
        n: Size of the subset.

    Returns:
        The chosen names, in round-robin order.
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for name, k in sorted(zip(names, keys, strict=True), key=lambda t: (t[1], t[0])):
        groups[k].append(name)
    queues = [groups[k] for k in sorted(groups)]
    out: list[str] = []
    depth = 0
    while len(out) < n and any(depth < len(q) for q in queues):
        out += [q[depth] for q in queues if depth < len(q)][: n - len(out)]
        depth += 1
    return out


def stratified_subset(keys: Sequence[str], n: int, seed: int = 0) -> list[int]:
    """Indices of a seeded subset of ``n`` items spread over strata (for ``--tiny``)."""
    if n >= len(keys):
        return list(range(len(keys)))
    frac = n / len(keys)
    picks = stratified_split(keys, frac, seed)
    chosen = [i for i, s in enumerate(picks) if s == "val"]
    return chosen[:n]


def inverse_frequency_weights(keys: Sequence[str]) -> np.ndarray:
    """Per-item sampling weights that make every stratum equally likely.

    For ``torch.utils.data.WeightedRandomSampler`` on a skewed set (the Oxford train pool has
    three breeds in 75% of its pairs).

    Args:
        keys: Stratum of each item.

    Returns:
        (N,) float64 weights summing to 1; each stratum's weights sum to 1 / n_strata.
    """
    if not len(keys):
        return np.zeros(0)
    counts: dict[str, int] = defaultdict(int)
    for k in keys:
        counts[k] += 1
    w = np.array([1.0 / counts[k] for k in keys])
    return w / w.sum()
