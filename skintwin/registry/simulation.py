"""How often the gate errs, measured on real detections of a trained model.

From one model's per-image rows on a labelled test set:
- an *equivalent* pair: two re-draws of the same detections, as another training seed
  would give (each confidence moved on the logit scale by Gaussian noise `sigma`; the same
  boxes, the same quality) — neither should be promoted over the other, and no tone group
  should be blocked;
- a *degraded* candidate: a re-draw that loses `fraction` of its true positives on one tone
  group — it should be blocked for that group.
Each repetition runs the real gate (`gate.decide`) with the given parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from skintwin.params import PromoteParams
from skintwin.registry.gate import decide
from skintwin.training.detstats import DetectionStats
from skintwin.training.evaluation import summarise


def reseed(stats: DetectionStats, rng: np.random.Generator, sigma: float) -> DetectionStats:
    """The same detections with confidences moved as another training seed moves them."""
    conf = np.clip(stats.conf, 1e-6, 1 - 1e-6)
    logit = np.log(conf / (1 - conf)) + rng.normal(0.0, sigma, len(conf))
    return replace(stats, conf=1 / (1 + np.exp(-logit)))


def lose_true_positives(
    stats: DetectionStats, images: list[int], fraction: float, rng: np.random.Generator
) -> DetectionStats:
    """Remove `fraction` of the true positives (at IoU 0.5) found in `images`."""
    in_images = np.isin(stats.det_image, images) & stats.tp[:, 0]
    hits = np.flatnonzero(in_images)
    gone = rng.choice(hits, size=round(len(hits) * fraction), replace=False)
    keep = np.ones(len(stats.conf), bool)
    keep[gone] = False
    return stats.keep_detections(keep)


@dataclass
class Rates:
    """Counts over `reps` repetitions of each scenario."""

    reps: int
    equivalent_not_blocked: int = 0  # no tone group in `blocked_by`
    equivalent_not_promoted: int = 0
    degraded_blocked: int = 0  # the degraded group found "regressed"
    degraded_not_promoted: int = 0
    overall_delta_sd: float = 0.0  # spread of the equivalent pairs' overall difference


def gate_rates(
    stats: DetectionStats,
    groups: tuple[str, ...],
    names: tuple[str, ...],
    params: PromoteParams,
    reps: int,
    seed: int = 0,
    sigma: float = 1.0,
    degraded_group: str = "dark",
    fraction: float = 1 / 3,
) -> Rates:
    """Run the gate `reps` times on each scenario; count its right answers."""
    rng = np.random.default_rng(seed)
    target = [i for i, g in enumerate(groups) if g == degraded_group]
    rates, deltas = Rates(reps), []
    for r in range(reps):
        p = params.model_copy(update={"seed": seed + r})
        champion = summarise(reseed(stats, rng, sigma), groups, names, None)
        equivalent = summarise(reseed(stats, rng, sigma), groups, names, None)
        d = decide(equivalent, champion, p)
        deltas.append(d.overall["delta"])
        rates.equivalent_not_promoted += not d.promote
        rates.equivalent_not_blocked += not d.blocked_by
        worse = lose_true_positives(reseed(stats, rng, sigma), target, fraction, rng)
        d = decide(summarise(worse, groups, names, None), champion, p)
        rates.degraded_blocked += d.groups[degraded_group]["verdict"] == "regressed"
        rates.degraded_not_promoted += not d.promote
    rates.overall_delta_sd = round(float(np.std(deltas)), 4)
    return rates
