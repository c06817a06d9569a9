"""What the estimate bench prints beside the estimator's errors: how far the truth itself
can be trusted (its sampling error, its test-retest reliability), what the lesion count
costs, and where the estimate is blind to a tone group's own shortfall."""

from __future__ import annotations

import numpy as np

from bench.common import Row
from skintwin.names import TONE_GROUPS

OPERATING = 0.25  # production's confidence: the detections the store keeps
KNOWN = "told the lesion count"  # a diagnostic, not label-free: told each window's lesions
HELD = 0.05  # a batch whose whole true figure fell less than this from the test value


def twin(found: list[dict], mode: str, metric: str) -> list[Row]:
    """The truth's own test-retest reliability, measured rather than simulated: each point's
    true figure beside its twin's, the labelled truth of the same shift and slice in the
    other seed's batch (other patients, the same conditions). Their rank correlation r is
    how repeatable a slice's measured figure is; an estimator of what the conditions do to
    the model, however exact, can reach about √r (Spearman's correction for attenuation,
    1904): the rest is each window's own sampling, which a label-free estimate sees only
    as far as its detections show it. Printed over the points that have a twin, with the
    estimator's ρ on them."""
    from scipy.stats import spearmanr

    index = {(p["batch"], p["slice"]): p for p in found}
    pairs = []
    for (batch, name), p in index.items():
        shift, seed = batch.rsplit("/", 1)
        twin = index.get((f"{shift}/{1 - int(seed)}", name))
        if twin is not None:
            pairs.append((p["true"][metric], twin["true"][metric], p[mode][metric]))
    if len(pairs) < 3:
        return []
    true, twin, est = (np.array(c) for c in zip(*pairs, strict=True))
    r = float(spearmanr(true, twin).statistic)
    rho_est = float(spearmanr(true, est).statistic)
    return [
        Row(f"{metric}: the truth's test-retest rho, r, against a labelled twin window "
            f"({len(pairs)} points; the estimator's rho on them {rho_est:.2f})", r, ""),
        Row(f"{metric}: the best an estimator of the conditions can reach, about sqrt(r)",
            float(np.sqrt(max(r, 0.0))), "", target="≥ 0.8"),
    ]  # fmt: skip


def told(found: list[dict], metric: str) -> str:
    """How far the estimate gets when it knows how many lesions each window holds: what
    the lesion count, which no detection shows, costs it."""
    from scipy.stats import spearmanr

    true = np.array([p["true"][metric] for p in found])
    est = np.array([p[KNOWN][metric] for p in found])
    return (f"{KNOWN} (a diagnostic): MAE {np.mean(np.abs(true - est)):.3f}, "
            f"rho {spearmanr(true, est).statistic:.2f}")  # fmt: skip


def ceiling(found: list[dict], metric: str, label: str = "") -> list[Row]:
    """What no estimator can beat: the truth of a slice is itself measured on a sample of
    images (its sampling error: a delete-half jackknife of the true figure). An oracle that
    knew each slice's expected figure exactly would still miss the measured one by that
    error; its Spearman ρ is simulated taking the measured figures as the expected ones,
    which overstates their spread, so the ceiling printed is an optimistic one."""
    from scipy.stats import spearmanr

    true = np.array([p["true"][metric] for p in found])
    sd = np.array([p["true_sd"].get(metric, 0.0) for p in found])
    rng = np.random.default_rng(0)
    rhos = [spearmanr(true, true + rng.normal(0, sd)).statistic for _ in range(200)]
    where = f" ({label})" if label else ""
    return [
        Row(f"{metric}: truth's own sampling error, mean{where}", float(sd.mean()), ""),
        Row(f"{metric}: an oracle's mean abs error{where}",
            float(np.mean(sd) * np.sqrt(2 / np.pi)), "", target="≤ 0.05"),
        Row(f"{metric}: an oracle's Spearman rho, median of 200 "
            f"({sum(r >= 0.8 for r in rhos)} of 200 ≥ 0.8){where}",
            float(np.median(rhos)), "", target="≥ 0.8"),
    ]  # fmt: skip


def by_group(found: list[dict], mode: str, metric: str) -> str:
    """Each tone group's true figure and its estimate, averaged over the batches that held
    (the whole batch's true figure within HELD of the test value): what the model does for
    that group when nothing moved, and whether the estimate sees it. A group the model
    serves worse, with confidences that do not show it, is over-stated here, and no
    label-free alarm can catch a shortfall that was there from the start."""
    whole = {p["batch"]: p for p in found if p["slice"] == "all"}
    held = {b for b, p in whole.items()
            if p["baseline"]["true"][metric] - p["true"][metric] < HELD}  # fmt: skip
    parts = []
    for name in TONE_GROUPS:
        mine = [p for p in found if p["slice"] == name and p["batch"] in held]
        if mine:
            true = np.mean([p["true"][metric] for p in mine])
            est = np.mean([p[mode][metric] for p in mine])
            parts.append(f"{name} {true:.3f} est {est:.3f} ({est - true:+.3f})")
    return f"true per tone group where the batch held ({len(held)} batches): " + "; ".join(parts)


def by_slice(found: list[dict], mode: str, metric: str) -> str:
    """Spearman ρ within each slice across the batches: whether the estimate follows one
    group's figure as the conditions change (what its alarm asks), apart from how the
    groups rank against each other, which a group's own draw of lesions sets."""
    from scipy.stats import spearmanr

    parts = []
    for name in ("all", *TONE_GROUPS):
        mine = [p for p in found if p["slice"] == name]
        if len(mine) >= 3:
            true = [p["true"][metric] for p in mine]
            rho = spearmanr(true, [p[mode][metric] for p in mine]).statistic
            parts.append(f"{name} {rho:.2f} ({len(mine)})")
    return "rho within each slice across batches: " + "; ".join(parts)


def by_shift(found: list[dict], mode: str, metric: str) -> str:
    """Each shift's mean true figure and mean error over its slices: where the estimate
    fails, by kind and strength of shift."""
    shifts: dict[str, list[dict]] = {}
    for p in found:
        shifts.setdefault(p["batch"].rsplit("/", 1)[0], []).append(p)
    parts = []
    for shift, mine in shifts.items():
        true = np.array([p["true"][metric] for p in mine])
        err = np.array([p[mode][metric] for p in mine]) - true
        parts.append(f"{shift} {true.mean():.3f} ({err.mean():+.3f})")
    return "true per shift (mean error): " + "; ".join(parts)


def additive(found: list[dict], mode: str, metric: str) -> str:
    """Oracles that remove the estimate's error as the sum of a term per shift and a term
    per slice (then also per seed's draw of patients in each slice), fitted on the truth:
    the ρ any correction by condition and by group, however exact, could reach. Where they
    stay under 0.8, what is left is how a shift bends the estimate differently in each
    group, which only labels from each group under each condition measure."""
    from scipy.stats import spearmanr

    true = np.array([p["true"][metric] for p in found])
    est = np.array([p[mode][metric] for p in found])

    def onehot(keys: list) -> np.ndarray:
        levels = sorted(set(keys))
        return np.eye(len(levels))[[levels.index(k) for k in keys]]

    shift = onehot([p["batch"].rsplit("/", 1)[0] for p in found])
    part = onehot([p["slice"] for p in found])
    draw = onehot([(p["slice"], p["batch"].rsplit("/", 1)[1]) for p in found])
    out = []
    for name, x in (("shift + slice", np.hstack([shift, part])),
                    ("shift + each seed's slice", np.hstack([shift, draw]))):  # fmt: skip
        fit = x @ np.linalg.lstsq(x, est - true, rcond=None)[0]
        out.append(f"{name} {spearmanr(true, est - fit).statistic:.3f}")
    return "rho with the error removed by an additive oracle: " + "; ".join(out)


# the labelled audits a window may be anchored on: the calm conditions an audit is usually
# made under, and a strong shift, whose error must not carry into the other windows
AUDITS = ("none", "lighting-mild", "blur-mild", "cast", "resolution", "lighting-strong")


def anchored(found: list[dict], mode: str, metric: str, min_images: int, audit: str) -> list:
    """The points with each tone group's estimate anchored as monitoring anchors it
    (`monitoring.anchor`), on a labelled audit of the *other* seed's `audit` batch (other
    patients; its slices' errors as the audit flow keeps them), so no point is anchored on
    its own photos. With one seed, nothing is anchored."""
    from skintwin.monitoring.anchor import anchor_slice, corrections

    audits = {}
    for seed in {p["batch"].rsplit("/", 1)[1] for p in found}:
        slices = {
            p["slice"]: {"images": p.get("images", min_images),
                         metric: {"error": p[mode][metric] - p["true"][metric],
                                  "sd": p["true_sd"].get(metric, 0.0)}}
            for p in found if p["batch"] == f"{audit}/{seed}"
        }  # fmt: skip
        audits[seed] = corrections({"slices": slices}, (metric,), min_images)
    out = []
    for p in found:
        other = str(1 - int(p["batch"].rsplit("/", 1)[1]))
        moves = audits.get(other, {}).get(p["slice"])
        if moves is None:
            out.append(p)
            continue
        lo, hi = p["interval"][metric]
        entry = {metric: {"value": p[mode][metric], "lo": lo, "hi": hi},
                 "baseline": {metric: p["baseline"]["estimate"][metric]["value"]}}  # fmt: skip
        moved = anchor_slice(entry, moves)
        baseline = {
            **p["baseline"],
            "estimate": {
                **p["baseline"]["estimate"],
                metric: {"value": moved["baseline"][metric]},
            },
        }
        out.append({**p, mode: {**p[mode], metric: moved[metric]["value"]},
                    "interval": {**p["interval"], metric: (moved[metric]["lo"],
                                                          moved[metric]["hi"])},
                    "baseline": baseline})  # fmt: skip
    return out
