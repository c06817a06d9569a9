from __future__ import annotations

from collections import Counter

import pytest

from skintwin.data.splits import SPLITS, stratified_split
from skintwin.params import TONE_GROUPS

CLASSES = ("acne", "mole", "rash")


def _items(n: int = 240) -> list[tuple[list[str], str]]:
    items = []
    for i in range(n):
        classes = [CLASSES[i % 3]] + ([CLASSES[(i // 3) % 3]] if i % 5 == 0 else [])
        items.append((sorted(set(classes)) if i % 17 else [], TONE_GROUPS[(i // 2) % 6]))
    return items


def test_same_seed_same_split_and_seed_matters() -> None:
    items = _items()
    a = stratified_split(items, 0.15, 0.2, seed=1)
    assert a == stratified_split(items, 0.15, 0.2, seed=1)
    assert a != stratified_split(items, 0.15, 0.2, seed=2)


def test_fractions_hold() -> None:
    counts = Counter(stratified_split(_items(), 0.15, 0.2, seed=5))
    assert counts["test"] == pytest.approx(48, abs=3)
    assert counts["val"] == pytest.approx(36, abs=3)


def test_every_class_and_tone_group_in_every_split() -> None:
    items = _items()
    assignment = stratified_split(items, 0.15, 0.2, seed=9)
    for split in SPLITS:
        members = [it for it, s in zip(items, assignment, strict=True) if s == split]
        assert {c for classes, _ in members for c in classes} == set(CLASSES)
        assert {tone for _, tone in members} == set(TONE_GROUPS)


def test_rare_class_reaches_all_splits() -> None:
    items = [(["acne"], "tan")] * 60 + [(["mole"], "dark")] * 3
    assignment = stratified_split(items, 0.15, 0.2, seed=0)
    assert {s for (c, _), s in zip(items, assignment, strict=True) if c == ["mole"]} == set(SPLITS)
