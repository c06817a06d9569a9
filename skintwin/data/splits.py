"""Deterministic train/val/test split: stratified by lesion class and skin-tone group, with
a minimum of test images per tone group, and near-duplicate groups kept in one split.

Stable as a dataset grows: each image's place in its group's order is a hash of the seed
and the image's own key (its content digest), not of its position in the list, so adding
images leaves almost every earlier image in its split. A reshuffle put half of the new
test split on images the champion had trained on, and the gate then scored the champion
on its own training images."""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class _Unit:
    """Images that must share a split (a near-duplicate group, or one image)."""

    members: tuple[int, ...]
    classes: frozenset[str]
    tone: str
    key: str  # the smallest of its members' keys: where it falls in its group's order


def _units(
    items: Sequence[tuple[Sequence[str], str]],
    groups: Sequence[Sequence[int]],
    keys: Sequence[str],
) -> list[_Unit]:
    grouped = {i for g in groups for i in g}
    units = [
        _Unit(
            tuple(sorted(g)),
            frozenset(c for i in g for c in items[i][0]),
            items[min(g)][1],
            min(keys[i] for i in g),
        )
        for g in groups
    ]
    units += [
        _Unit((i,), frozenset(items[i][0]), items[i][1], keys[i])
        for i in range(len(items))
        if i not in grouped
    ]
    return units


def _rank(seed: int, tone: str, key: str) -> str:
    return hashlib.sha256(f"{seed}:{tone}:{key}".encode()).hexdigest()


def _take(units: list[_Unit], target: int, freq: Counter) -> list[_Unit]:
    """About `target` images from `units`, in the units' (hashed) order: each class (a
    unit counts under its rarest class) gives its proportional share, largest remainders
    first, so a rare class is not drained from training."""
    by_class: dict[str, list[_Unit]] = defaultdict(list)
    for u in units:
        rarest = min(u.classes, key=lambda c: (freq[c], c)) if u.classes else "background"
        by_class[rarest].append(u)
    sizes = {k: sum(len(u.members) for u in v) for k, v in by_class.items()}
    total = sum(sizes.values())
    if target <= 0 or total == 0:
        return []
    quota = {k: target * n / total for k, n in sizes.items()}
    share = {k: math.floor(q) for k, q in quota.items()}
    for k in sorted(quota, key=lambda k: (share[k] - quota[k], k))[: target - sum(share.values())]:
        share[k] += 1
    taken = []
    for key in sorted(by_class):
        count = 0
        for u in by_class[key]:
            if count >= share[key]:
                break
            taken.append(u)
            count += len(u.members)
    return taken


def _ensure_coverage(assignment: list[str], units: list[_Unit]) -> None:
    """Move single units so every class and tone group with ≥ 3 images is in every split."""
    keys = [[u.classes for u in units], [{u.tone} for u in units]]
    for values in keys:
        for value in sorted({v for vs in values for v in vs}):
            holders = [i for i, vs in enumerate(values) if value in vs]
            if sum(len(units[i].members) for i in holders) < len(SPLITS):
                continue
            for split in SPLITS:
                if any(assignment[i] == split for i in holders):
                    continue
                counts = Counter(assignment[i] for i in holders)
                donor = max(SPLITS, key=lambda s: (counts[s], s))
                candidates = [i for i in holders if assignment[i] == donor]
                if len(candidates) < 2:
                    continue
                pick = min(candidates, key=lambda i: (len(values[i]), len(units[i].members), i))
                assignment[pick] = split


def stratified_split(
    items: Sequence[tuple[Sequence[str], str]],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    min_test_per_group: int = 0,
    groups: Sequence[Sequence[int]] = (),
    keys: Sequence[str] | None = None,
) -> list[str]:
    """Assign each item (its class names, its tone group) to "train", "val" or "test".

    The same items and seed always give the same assignment. Each tone group gives the
    test split `test_fraction` of its images, and at least `min_test_per_group` while it
    keeps two for train and val; then val its fraction; within a group, each class gives
    its proportional share. Items in one of `groups` (near-duplicates) share
    a split. Finally every class and tone group with at least three images is made present
    in every split.

    `keys` (one per item, e.g. its content digest) order each group by a hash of the seed
    and the key, so adding items moves few of the others; without them, positions serve.
    """
    keys = [str(i) for i in range(len(items))] if keys is None else list(keys)
    if len(keys) != len(items):
        raise ValueError(f"{len(keys)} keys for {len(items)} items")
    units = _units(items, groups, keys)
    freq = Counter(c for u in units for c in u.classes)
    by_tone: dict[str, list[int]] = defaultdict(list)
    for k, u in enumerate(units):
        by_tone[u.tone].append(k)
    assignment = ["train"] * len(units)
    for tone in sorted(by_tone):
        order = sorted(by_tone[tone], key=lambda k: _rank(seed, tone, units[k].key))
        n = sum(len(units[k].members) for k in order)
        n_test = math.floor(n * test_fraction + 0.5)
        if n >= 3:
            n_test = min(max(n_test, min_test_per_group), n - 2)
        pool = [units[k] for k in order]
        test = {id(u) for u in _take(pool, n_test, freq)}
        rest = [u for u in pool if id(u) not in test]
        n_rest = sum(len(u.members) for u in rest)
        n_val = min(math.floor(n * val_fraction + 0.5), max(0, n_rest - 1))  # train keeps one
        val = {id(u) for u in _take(rest, n_val, freq)}
        for k in order:
            u = units[k]
            assignment[k] = "test" if id(u) in test else "val" if id(u) in val else "train"
    _ensure_coverage(assignment, units)
    out = ["train"] * len(items)
    for k, u in enumerate(units):
        for i in u.members:
            out[i] = assignment[k]
    return out
