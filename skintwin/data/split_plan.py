"""Which split each image goes to, and the report that says whether the test split can carry
the promotion gate.

Two ways: re-split the pooled images (stratified, a minimum of test images per tone group,
near-duplicates kept together), or — `preprocess.keep_splits` — keep the dataset's own
train/val/test, as a curated clinical test set must stay what it is; then a near-duplicate
of a test (or val) image is dropped from the training side instead, so nothing leaks.
"""

from __future__ import annotations

import math
from collections import Counter
from statistics import NormalDist

import pandas as pd

from skintwin.data.splits import SPLITS, stratified_split
from skintwin.errors import SkinTwinError
from skintwin.params import PreprocessParams

_RANK = {"test": 0, "val": 1, "train": 2}
# Planning assumptions for the smallest detectable drop, before any model exists: an AP
# near 0.8, a one-sided 5 % test Bonferroni-split over the tone groups, power 0.9.
_PLAN_AP, _ALPHA, _POWER = 0.8, 0.05, 0.9


def plan_split(
    items: list[dict], params: PreprocessParams, near: list[list[int]]
) -> tuple[list[str], set[int]]:
    """(split of every item, indices dropped to keep a kept test/val split clean).

    Items have `classes`, `tone`, `source_split` (the dataset's own split, or "all") and
    `digest` (of the image's bytes: its place in the split's order, so the split is stable
    as images are added).
    """
    own = {it["source_split"] for it in items}
    if params.keep_splits and "test" in own and "train" in own:
        return _keep(items, params, near)
    pairs = [(it["classes"], it["tone"]) for it in items]
    split = stratified_split(
        pairs,
        params.val_fraction,
        params.test_fraction,
        params.seed,
        params.min_test_per_group,
        near,
        [it["digest"] for it in items],
    )
    return split, set()


def _keep(
    items: list[dict], params: PreprocessParams, near: list[list[int]]
) -> tuple[list[str], set[int]]:
    split = [it["source_split"] for it in items]
    dropped = set()
    for group in near:  # the copy in the most guarded split stays; the others go
        best = min(_RANK[split[i]] for i in group)
        dropped |= {i for i in group if _RANK[split[i]] > best}
    if "val" not in split:  # carve a validation split from train, stratified
        train = [i for i, s in enumerate(split) if s == "train" and i not in dropped]
        pairs = [(items[i]["classes"], items[i]["tone"]) for i in train]
        where = {i: k for k, i in enumerate(train)}
        kept = [[where[i] for i in g if i in where] for g in near]  # near-duplicates stay
        groups = [g for g in kept if len(g) > 1]  # together on either side of the carve
        keys = [items[i]["digest"] for i in train]
        carved = stratified_split(
            pairs, params.val_fraction, 0.0, params.seed, groups=groups, keys=keys
        )
        for i, s in zip(train, carved, strict=True):
            split[i] = "val" if s == "val" else "train"
    return split, dropped


def check_source_splits(items: list[dict], params: PreprocessParams) -> None:
    """With `keep_splits`, a dataset without its own train and test is an error."""
    own = {it["source_split"] for it in items}
    if params.keep_splits and not {"train", "test"} <= own:
        raise SkinTwinError(
            "preprocess.keep_splits: the dataset has no train and test splits of its own "
            f"(found {sorted(own)}); set keep_splits: false to split it here"
        )


def smallest_detectable_drop(instances: int, groups: int) -> float | None:
    """Planning estimate of the smallest drop of AP a group's test images could reveal."""
    if instances < 1:
        return None
    z = NormalDist().inv_cdf(1 - _ALPHA / max(1, groups)) + NormalDist().inv_cdf(_POWER)
    return round(z * math.sqrt(_PLAN_AP * (1 - _PLAN_AP) / instances), 3)


def split_report(table: pd.DataFrame, names: tuple[str, ...], near: dict) -> dict:
    """Counts per split, class and tone group; the test split per group with its planning
    smallest detectable drop; the near-duplicates found and what was done with them."""
    splits = {}
    for split in SPLITS:
        part = table[table["split"] == split]
        splits[split] = {
            "images": len(part),
            "classes": {c: int((part[f"n_{c}"] > 0).sum()) for c in names},
            "tone_groups": {str(k): int(v) for k, v in part["tone_group"].value_counts().items()},
        }
    test = table[table["split"] == "test"]
    groups = sorted(test["tone_group"].unique())
    per_group = {}
    for g in groups:
        rows = test[test["tone_group"] == g]
        boxes = int(rows["n_labels"].sum())
        per_group[str(g)] = {
            "images": len(rows),
            "instances": boxes,
            "classes": {c: int((rows[f"n_{c}"] > 0).sum()) for c in names},
            "smallest_detectable_drop": smallest_detectable_drop(boxes, len(groups)),
        }
    return {
        "images": len(table),
        "splits": splits,
        "test_per_group": per_group,
        "planning": (
            f"smallest detectable drop: z·SE of one model's AP over the group's boxes, "
            f"AP≈{_PLAN_AP}, one-sided {_ALPHA} Bonferroni over the groups, power {_POWER}; "
            "the gate's own figure adds promote.group_tolerance and is measured from both "
            "models' paired differences"
        ),
        "near_duplicates": near,
        "splits_per_near_duplicate_group": Counter(
            len(set(table.loc[table["file"].isin(g), "split"])) for g in near["groups"]
        ).most_common(),
    }
