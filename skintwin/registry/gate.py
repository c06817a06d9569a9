"""The promotion gate: may a candidate replace the champion? Decided on evidence, not on
point differences that a different seed or a few images would turn around.

Candidate and champion are evaluated on the same test images, so the comparison is paired:
one bootstrap draws the images with replacement and scores both models on every draw; the
differences give an interval for "candidate minus champion", overall and per tone group.

1. Floor: the candidate's metric reaches `floor` (the first model is judged on this alone).
2. Overall, rule `superior` (default): the improvement reaches `min_delta` and the whole
   interval lies above 0 — evidence that the candidate is better, not a lucky draw. Rule
   `non_inferior` (a team that wants a model trained on newer data to replace an equivalent
   champion asks for it): the interval's low end lies above −`non_inferiority_margin`.
3. Each tone group, with one-sided bounds Bonferroni-corrected over the gated groups:
   "regressed" (blocks) when the upper bound lies below −`group_tolerance` (a drop beyond
   tolerance, with confidence); "no regression beyond tolerance" when the lower bound rules
   such a drop out; "no detectable regression" when it does not, but the smallest drop the
   group's images would reveal (power 0.9) is within `max_detectable_drop`; else — and
   for a group with fewer than `min_group_images` test images, or none, or none with a
   lesion — "insufficient evidence" (blocks unless `on_insufficient: allow`; recorded
   either way, never a silent pass)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np

from skintwin.errors import SkinTwinError
from skintwin.names import TONE_GROUPS
from skintwin.params import PromoteParams
from skintwin.training.detstats import DetectionStats
from skintwin.training.evaluation import Evaluation
from skintwin.training.uncertainty import interval, resamples, weighted_map

POWER = 0.9  # the power at which a drop counts as detectable


@dataclass
class Decision:
    promote: bool
    reasons: list[str]
    metric: str
    candidate: float
    champion: float | None
    rule: str = "floor"
    overall: dict = field(default_factory=dict)  # {"delta", "lo", "hi"}
    # per tone group: n, delta, lo/hi (the one-sided bounds the verdict used), sdd, verdict
    groups: dict[str, dict] = field(default_factory=dict)
    blocked_by: list[str] = field(default_factory=list)  # tone groups that block
    # the candidate on the whole test split, which the floor judged, where the two models
    # were compared on part of it (`candidate` and `champion` are then that part's figures)
    candidate_whole: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def paired_deltas(
    candidate: DetectionStats, champion: DetectionStats, metric: str, n_boot: int, seed: int
) -> np.ndarray:
    """Bootstrap samples of candidate − champion over the same resampled images."""
    weights = resamples(len(candidate), n_boot, seed)
    theirs = champion.aligned_to(candidate.files)
    if not candidate.same_truth(theirs):
        raise SkinTwinError("evaluations are not on the same images and labels: re-evaluate")
    return weighted_map(candidate, weights, metric) - weighted_map(theirs, weights, metric)


def decide(
    candidate: Evaluation,
    champion: Evaluation | None,
    p: PromoteParams,
    whole: Evaluation | None = None,
) -> Decision:
    """Apply the gate (champion None when there is none yet). `whole`: the candidate on the
    whole test split when the two are compared on part of it (the photos the champion never
    trained on); the floor is judged on it."""
    value = float((whole or candidate).overall[p.metric])
    reasons = [
        f"{p.metric} {value:.4f} {'reaches' if value >= p.floor else 'is below'} "
        f"the floor {p.floor}"
    ]
    ok = value >= p.floor
    if champion is None:
        reasons.append("no champion yet: the floor is the only requirement")
        return Decision(ok, reasons, p.metric, value, None)
    if candidate.stats is None or champion.stats is None:
        raise SkinTwinError("the gate needs per-image rows of both models (test_stats.npz)")
    base = float(champion.overall[p.metric])
    delta = float(candidate.overall[p.metric]) - base
    overall, passed, text = _overall(candidate, champion, delta, p)
    reasons.append(text)
    groups = _groups(candidate, champion, p)
    blocked = [
        name
        for name, g in groups.items()
        if g["verdict"] == "regressed"
        or (g["verdict"] == "insufficient evidence" and p.on_insufficient == "block")
    ]
    reasons += [f"tone group '{n}': {g['verdict']} — {g['why']}" for n, g in groups.items()]
    promote = ok and passed and not blocked
    ours = float(candidate.overall[p.metric])
    return Decision(
        promote, reasons, p.metric, ours, base, p.rule, overall, groups, blocked,
        candidate_whole=value if whole is not None and whole is not candidate else None,
    )  # fmt: skip


def _overall(
    candidate: Evaluation, champion: Evaluation, delta: float, p: PromoteParams
) -> tuple[dict, bool, str]:
    samples = paired_deltas(candidate.stats, champion.stats, p.metric, p.bootstrap, p.seed)
    lo, hi = interval(samples, p.confidence)
    shown = f"{p.metric} {delta:+.4f} vs champion ({p.confidence:.0%} CI {lo:+.4f} to {hi:+.4f})"
    overall = {"delta": round(delta, 5), "lo": round(lo, 5), "hi": round(hi, 5)}
    if p.rule == "superior":
        passed = delta >= p.min_delta and lo > 0
        verdict = "better with evidence" if passed else "no evidence of improvement"
        return overall, passed, f"{shown}: {verdict} (superior: ≥ {p.min_delta} and CI > 0)"
    passed = lo > -p.non_inferiority_margin
    verdict = "not worse" if passed else "may be worse"
    margin = p.non_inferiority_margin
    return overall, passed, f"{shown}: {verdict} (non_inferior: CI above −{margin})"


def _groups(candidate: Evaluation, champion: Evaluation, p: PromoteParams) -> dict[str, dict]:
    # every tone group is judged: one absent from the test split is "n = 0", not a pass
    mine = {g: [] for g in TONE_GROUPS} | candidate.group_images()
    theirs = champion.stats.aligned_to(candidate.stats.files)
    lesions = {g: int(np.isin(candidate.stats.gt_image, idx).sum()) for g, idx in mine.items()}
    gated = [g for g, idx in mine.items() if len(idx) >= p.min_group_images and lesions[g]]
    alpha = (1 - p.confidence) / max(1, len(gated))  # one-sided, Bonferroni over groups
    z = NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(POWER)
    out = {}
    for k, (group, idx) in enumerate(sorted(mine.items())):
        ours, theirs_g = candidate.per_group.get(group), champion.per_group.get(group)
        delta = round(ours[p.metric] - theirs_g[p.metric], 5) if ours and theirs_g else None
        row = {"n": len(idx), "delta": delta, "lo": None, "hi": None, "sdd": None}
        if group not in gated:  # too few photos, or none with a lesion to find
            why = f"n = {len(idx)} < min_group_images {p.min_group_images}"
            rule = "min_group_images"
            if len(idx) >= p.min_group_images:
                why, rule = f"n = {len(idx)}, no lesion labelled in them", "lesions"
            out[group] = row | {"verdict": "insufficient evidence", "why": why, "rule": rule}
            continue
        if delta is None:  # e.g. a stale metrics.json beside fresh rows: fail, never pass
            raise SkinTwinError(f"tone group '{group}': one evaluation lacks its figures; "
                                "re-evaluate both models")  # fmt: skip
        samples = paired_deltas(
            candidate.stats.subset(idx), theirs.subset(idx), p.metric, p.bootstrap, p.seed + k
        )
        finite = samples[np.isfinite(samples)]
        lower, upper = (float(b) for b in np.percentile(finite, [100 * alpha, 100 * (1 - alpha)]))
        sdd = p.group_tolerance + z * float(np.std(finite))
        row |= {"lo": round(lower, 5), "hi": round(upper, 5), "sdd": round(sdd, 3)}
        worse = upper < 0  # worse beyond doubt, by however much
        if upper < -p.group_tolerance:
            verdict = "regressed"
            why = f"drop {-delta:.3f}, upper bound {upper:+.3f} < −{p.group_tolerance}"
        elif worse and delta < -2 * p.group_tolerance:  # a sure drop, measured at 2× or more
            verdict = "regressed"
            why = (f"drop {-delta:.3f} ≥ twice the tolerance {p.group_tolerance}, and worse "
                   f"beyond doubt (upper bound {upper:+.3f} < 0)")  # fmt: skip
        elif lower >= -p.group_tolerance:
            verdict = "no regression beyond tolerance"
            why = f"n = {len(idx)}, Δ {delta:+.3f}, lower bound {lower:+.3f} rules it out"
            why += f" (worse beyond doubt, within tolerance: upper {upper:+.3f})" if worse else ""
        elif worse:  # a real drop, under twice the tolerance on its face, beyond it not ruled out
            verdict = "insufficient evidence"
            why = (f"n = {len(idx)}, worse beyond doubt (Δ {delta:+.3f}, upper bound "
                   f"{upper:+.3f} < 0); a drop beyond {p.group_tolerance} not ruled out "
                   f"(lower bound {lower:+.3f})")  # fmt: skip
        elif sdd > p.max_detectable_drop:
            verdict = "insufficient evidence"
            why = f"n = {len(idx)}, smallest detectable drop {sdd:.2f}"
        else:
            verdict = "no detectable regression"
            why = f"n = {len(idx)}, Δ {delta:+.3f}; a drop ≥ {sdd:.2f} would have shown"
        rule = (
            f"one-sided {1 - alpha:.4f} bounds (Bonferroni over {len(gated)} groups): "
            f"regressed if the upper < −{p.group_tolerance}, or if the upper < 0 and Δ < "
            f"−{2 * p.group_tolerance:g}; no regression beyond tolerance "
            f"if the lower ≥ −{p.group_tolerance}; no detectable regression if a drop of "
            f"{p.max_detectable_drop} would have shown (power {POWER}) and the upper ≥ 0; "
            "else insufficient evidence"
        )
        out[group] = row | {"verdict": verdict, "why": why, "rule": rule}
    return out
