"""Deterministic train/val/test split, stratified by lesion class and skin-tone group."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence

SPLITS = ("train", "val", "test")


def _stratum(classes: Sequence[str], tone: str, class_freq: Counter) -> tuple[str, str]:
    # The rarest class an image holds decides its stratum, so rare classes spread evenly.
    rarest = min(classes, key=lambda c: (class_freq[c], c)) if classes else "background"
    return rarest, tone


def _ensure_coverage(assignment: list[str], key_sets: list[list[set[str]]]) -> None:
    """Move single images so every class and tone group with ≥ 3 images is in every split."""
    for values in key_sets:
        for value in sorted({v for vs in values for v in vs}):
            holders = [i for i, vs in enumerate(values) if value in vs]
            if len(holders) < len(SPLITS):
                continue
            for split in SPLITS:
                if any(assignment[i] == split for i in holders):
                    continue
                counts = Counter(assignment[i] for i in holders)
                donor = max(SPLITS, key=lambda s: (counts[s], s))
                # Move the donor image that carries the fewest other labels (least disruption).
                candidates = [i for i in holders if assignment[i] == donor]
                pick = min(candidates, key=lambda i: (len(values[i]), i))
                assignment[pick] = split


def stratified_split(
    items: Sequence[tuple[Sequence[str], str]],
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> list[str]:
    """Assign each item (its class names, its tone group) to "train", "val" or "test".

    The same items and seed always give the same assignment. Within each stratum
    (rarest class × tone group) items are shuffled and cut by the fractions, carrying
    rounding remainders across strata so the global proportions hold; then every class and
    tone group with at least three images is made present in every split.
    """
    class_freq = Counter(c for classes, _ in items for c in set(classes))
    strata: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (classes, tone) in enumerate(items):
        strata[_stratum(classes, tone, class_freq)].append(i)
    assignment = ["train"] * len(items)
    carry_val = carry_test = 0.0
    for key in sorted(strata):
        members = strata[key]
        random.Random(f"{seed}:{key[0]}:{key[1]}").shuffle(members)
        exact_test = len(members) * test_fraction + carry_test
        exact_val = len(members) * val_fraction + carry_val
        n_test = min(len(members), math.floor(exact_test + 0.5))
        n_val = min(len(members) - n_test, math.floor(exact_val + 0.5))
        carry_test, carry_val = exact_test - n_test, exact_val - n_val
        for j, idx in enumerate(members):
            assignment[idx] = "test" if j < n_test else "val" if j < n_test + n_val else "train"
    class_sets = [set(classes) for classes, _ in items]
    tone_sets = [{tone} for _, tone in items]
    _ensure_coverage(assignment, [class_sets, tone_sets])
    return assignment
