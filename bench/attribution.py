"""Patients or photos: how the within-tone-group tests (`monitoring/attribution.py`) read
each kind of change, on generated photos (image features only; no model is needed).

A window the tests call changed makes a moved tone mix "apparent" (a warning about the
photos); one they leave alone makes it a confirmed change of patients (critical). The
generator's `tone` batch changes the mix of tone groups only; `tone-darker` moves every
patient 12 degrees of ITA darker, as a real population drifts: each group's photos move
within it too, which within-group tests of brightness and ITA read as the light.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import Row

SIZES = {"small": {"calm": 10, "seeds": 5}, "default": {"calm": 20, "seeds": 10}}
IMAGES = 200  # photos a window
REFERENCE = 400  # the reference's photos (a demo training split holds about 250)
REPO = Path(__file__).resolve().parents[1]
# each kind of batch, and what changed in it: only "the photos" should be called changed
CHANGED = {
    "none": "nothing",
    "tone": "the patients",
    "tone-darker": "the patients",
    "lighting": "the photos",
    "lighting-mild": "the photos",
    "bright": "the photos",
    "cast": "the photos",
}


def features(g, seed: int, n: int, shift: str) -> pd.DataFrame:
    """Image features of `n` photos generated as `g` (the `generate` params) says, under
    `shift` (true lesion boxes left out of the tone)."""
    from skintwin.data.features import image_features
    from skintwin.data.synth import SHIFTS, paint

    rows = []
    for i in range(n):
        p = paint(seed, i, g.image_size, g.class_weights, g.tone_weights, g.max_lesions,
                  g.background_fraction, SHIFTS[shift])  # fmt: skip
        rows.append(image_features(p.rgb, [b[1:] for b in p.boxes]))
    return pd.DataFrame(rows)


def run(size: str) -> list[Row]:
    from skintwin.monitoring.attribution import within_groups
    from skintwin.params import load_params

    params = load_params(REPO / "params.yaml")
    monitor = params.monitor
    reference = features(params.generate, 1, REFERENCE, "none")
    rows = []
    for shift, changed in CHANGED.items():
        n = SIZES[size]["calm" if shift == "none" else "seeds"]
        called, weakest = 0, []
        for k in range(n):
            seed = 2000 + 100 * k + list(CHANGED).index(shift)
            window = features(params.generate, seed, IMAGES, shift)
            within = within_groups(reference, window, monitor)
            called += bool(within["changed"])
            weakest.append(min(within["p_values"].values(), default=1.0))
        smallest = np.round(weakest, 5).tolist()
        print(f"attribution bench: {shift:13} called a change of the photos in {called} of {n};"
              f" smallest p per window {smallest}", flush=True)  # fmt: skip
        right = called if changed == "the photos" else n - called
        rows.append(
            Row(
                f"{shift} ({changed}): read right by the within-group tests ({right} of {n})",
                100 * right / n,
                "%",
                target="≥ 90%",
                ok=right >= 0.9 * n,
            )
        )
    return rows
