"""Embedding drift: do production images look, to the champion's own backbone, like the
reference images?

A kernel two-sample test on the version's whitened embeddings (`model.embedding`): the
maximum mean discrepancy with a Gaussian kernel at the median pairwise distance, and a
permutation p-value (Gretton et al., "A Kernel Two-Sample Test", JMLR 2012). Rabanser et
al. ("Failing Loudly", NeurIPS 2019) found MMD on a reduced representation the most
reliable detector of dataset shift among those they compared. It runs over the whole window
and within each tone group that both sides populate, with a Bonferroni correction, so its
false-alarm rate is `monitor.embed_threshold` at most.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skintwin.model.embedding import matrix
from skintwin.params import MonitorParams


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int, seed: int = 0) -> tuple[float, ...]:
    """(MMD², permutation p-value) of samples x and y (rows × dims).

    Every permutation reuses one kernel matrix: the statistic is sᵀKs with s = 1/n on one
    sample's rows and −1/m on the other's, so all permutations are one matrix product.
    """
    z = np.vstack([x, y]).astype(np.float32)
    n, total = len(x), len(x) + len(y)
    sq = np.einsum("ij,ij->i", z, z)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    upper = d2[np.triu_indices(total, 1)]
    bandwidth = float(np.median(upper)) or float(upper.mean()) or 1.0
    kernel = np.exp(-d2 / bandwidth, dtype=np.float32)
    del d2, upper
    base = np.where(np.arange(total) < n, 1.0 / n, -1.0 / (total - n)).astype(np.float32)
    rng = np.random.default_rng(seed)
    signs = np.empty((total, permutations + 1), np.float32)
    signs[:, 0] = base
    for j in range(1, permutations + 1):
        signs[:, j] = base[rng.permutation(total)]
    stats = np.einsum("ij,ij->j", signs, kernel @ signs)
    p_value = (1 + int(np.sum(stats[1:] >= stats[0]))) / (permutations + 1)
    return float(stats[0]), float(p_value)


def _vectors(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, tone groups) of the rows that have an embedding."""
    if "embedding" not in frame:
        return np.zeros((0, 0), np.float32), np.array([], object)
    rows = frame[frame["embedding"].notna()]
    groups = rows["tone_group"].to_numpy() if "tone_group" in rows else np.full(len(rows), None)
    return matrix(rows["embedding"]), groups


def _sample(rows: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    return rows if len(rows) <= cap else rows[np.sort(rng.choice(len(rows), cap, replace=False))]


def embedding_drift(reference: pd.DataFrame, current: pd.DataFrame, params: MonitorParams) -> dict:
    """MMD tests of `current`'s embeddings against `reference`'s: the whole window ("all")
    and each tone group with `monitor.within_min_images` rows on both sides. A window
    larger than `monitor.embed_max_rows` is compared through a seeded sample of that size;
    each test runs `monitor.embed_permutations` permutations, or 3 / its threshold if more.

    Returns:
        {"available", "dims", "threshold" (per test, after Bonferroni), "tests": {slice:
        {"images": [reference, current], "mmd2", "p_value", "drifted"}}, "drifted",
        "drifted_slices"}; {"available": False, "reason"} without embeddings on a side.
    """
    (ref, ref_groups), (cur, cur_groups) = _vectors(reference), _vectors(current)
    if min(len(ref), len(cur)) < params.within_min_images:
        reason = f"embeddings: reference {len(ref)}, current {len(cur)} rows"
        return {"available": False, "reason": reason}
    if ref.shape[1] != cur.shape[1]:
        reason = f"embeddings of {ref.shape[1]} and {cur.shape[1]} dims: other model versions"
        return {"available": False, "reason": reason}
    slices = {"all": (np.ones(len(ref), bool), np.ones(len(cur), bool))}
    for group in sorted({g for g in ref_groups if isinstance(g, str)}):
        a, b = ref_groups == group, cur_groups == group
        if min(a.sum(), b.sum()) >= params.within_min_images:
            slices[group] = (a, b)
    alpha = params.embed_threshold / len(slices)
    # enough permutations that the smallest p-value they can give is well below alpha
    permutations = max(params.embed_permutations, int(np.ceil(3 / alpha)))
    rng = np.random.default_rng(0)
    tests = {}
    for name, (a, b) in slices.items():
        x = _sample(ref[a], params.embed_max_rows, rng)
        y = _sample(cur[b], params.embed_max_rows, rng)
        mmd2, p_value = mmd_test(x, y, permutations)
        tests[name] = {"images": [int(a.sum()), int(b.sum())], "mmd2": round(mmd2, 6),
                       "p_value": p_value, "drifted": p_value < alpha}  # fmt: skip
    drifted = [name for name, t in tests.items() if t["drifted"]]
    return {"available": True, "dims": int(ref.shape[1]), "threshold": alpha, "tests": tests,
            "drifted": bool(drifted), "drifted_slices": drifted}  # fmt: skip
