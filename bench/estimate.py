"""The label-free performance estimate against the truth: labelled production batches
under shifts of several kinds and strengths, each scored for real (its labels) and by the
estimator fitted on the model's validation split, overall and per tone group."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from bench import estimate_checks as checks
from bench import estimate_served as shown
from bench.common import Row, result_path
from bench.estimate_checks import KNOWN, OPERATING
from bench.estimate_scores import rows as score
from bench.estimate_scores import trade
from bench.estimate_served import SERVED

SIZES = {
    "small": {"images": 200, "seeds": 1, "min_group": 30},
    "default": {"images": 300, "seeds": 2, "min_group": 30},
    # tone groups of ~120 photos: the sizes monitoring reports and alarms on (its
    # `estimate_min_images`, 100), where the default size's groups of 30-60 are smaller
    "large": {"images": 720, "seeds": 2, "min_group": 100},
}
BATCHES = (
    "none", "lighting-mild", "lighting", "bright", "blur-mild", "blur", "blur-strong",
    "cast", "cast-strong", "resolution", "resolution-low", "tone", "lesions",
    "lighting-strong", "bright-strong", "blur-severe", "resolution-tiny", "cast-severe",
)  # fmt: skip
MODES = ("max",)  # how the estimator counts lesions (the one monitoring uses)


def _fit(project: Path, keep: Path) -> tuple:
    """The estimator as the evaluate stage fits it, and the test split's baselines."""
    from skintwin.params import load_params
    from skintwin.training.estimator import Estimator
    from skintwin.training.evaluation import evaluate_weights
    from skintwin.training.version_estimator import fit_for_version

    params = load_params(project / "params.yaml")
    weights, data = project / "models/train/weights/best.pt", project / "data/processed"
    device, imgsz = params.train.device, params.evaluate.imgsz
    test = evaluate_weights(weights, data, params.evaluate, "mAP50", device)
    doc = fit_for_version(weights, data, params.evaluate, device, test, OPERATING, imgsz)
    (keep / "estimator.json").write_text(json.dumps(doc, default=float))
    return Estimator.from_dict(doc["estimator"]), doc["test"], params, weights


def points(project: Path, work: Path, s: dict, keep: Path) -> tuple[list[dict], float]:
    """One point per (batch, slice): the validator's true figures on the labelled images,
    and the estimate from the service's detections on the same images; both batches'
    detections (and slices) and the estimator kept under `keep`, to score variants on."""
    from bench.drift import monitoring_setup, scored
    from skintwin.monitoring.drift import check_drift
    from skintwin.monitoring.performance import slice_baseline, unchecked
    from skintwin.ops.gatesim import labelled_detections
    from skintwin.training.served import served_stats
    from skintwin.training.truth import slices, true_figures
    from skintwin.training.uncertainty import half_spread

    estimator, tests, params, weights = _fit(project, keep)
    model, reference, monitor = monitoring_setup(project, work)
    truth = partial(true_figures, operating_conf=OPERATING)
    base = tests["all"]
    print(f"estimate bench: test split true {base['true']} estimated "
          f"{ {k: round(v['value'], 3) for k, v in base['estimate'].items()} }")  # fmt: skip
    out = []
    for shift in BATCHES:
        for seed in range(s["seeds"]):
            stats, groups, names = labelled_detections(
                weights, params, s["images"], 500 + seed, work, shift
            )
            folder = work / f"labelled-{shift}-{500 + seed}-{s['images']}"
            images = [folder / "images" / f for f in stats.files]
            served = served_stats(
                weights, images, folder / "labels", names, OPERATING, params.evaluate.imgsz
            )
            parts = slices(groups, s["min_group"])
            # the drift check on the whole batch, as the drift flow runs it beside the
            # estimate: what moved (`performance.corroborate` alerts a fall only then, or
            # where the check could not compare everything)
            drift = check_drift(reference, scored(model, monitor, folder / "images", shift),
                                monitor)  # fmt: skip
            moved, blind = drift["moved"], unchecked(drift)
            stats.save(keep / f"{shift}-{seed}-labelled.npz")
            served.save(keep / f"{shift}-{seed}-served.npz",
                        **{f"slice_{n}": m for n, m in parts.items()})  # fmt: skip
            for name, members in parts.items():
                labelled = stats.subset(members)
                point = {"batch": f"{shift}/{seed}", "slice": name, "images": len(members),
                         "moved": sorted(moved), "unchecked": blind,
                         "true": truth(labelled),
                         "true_sd": half_spread(labelled, truth),
                         SERVED: shown.truth(served.subset(members)),
                         "baseline": slice_baseline(tests, name)}  # fmt: skip
                for mode in MODES:
                    est = estimator.estimate_stats(served.subset(members), OPERATING,
                                                   n_boot=200, count=mode)  # fmt: skip
                    point[mode] = {k: est[k]["value"] for k in ("mAP50", "precision", "recall")}
                    point["interval"] = {
                        k: (est[k]["lo"], est[k]["hi"]) for k in ("mAP50", "recall")
                    }
                    if name == "all":
                        point["classes"] = shown.class_rows(est["classes"], labelled, names)
                    rate = len(labelled.gt_cls) / len(members)
                    known = replace(estimator, per_image=rate, lesion_rate=rate)
                    told = known.estimate_stats(served.subset(members), OPERATING, n_boot=1,
                                                count="prior")  # fmt: skip
                    point[KNOWN] = {k: told[k]["value"] for k in ("mAP50", "recall")}
                    alone = replace(estimator, offset_sd=None).estimate_stats(
                        served.subset(members), OPERATING, n_boot=200, count=mode)  # fmt: skip
                    point["window only"] = {
                        k: (alone[k]["lo"], alone[k]["hi"]) for k in ("mAP50", "recall")
                    }
                out.append(point)
                t, e = point["true"], point[MODES[0]]
                print(
                    f"estimate bench: {shift:14} {name:12} n={len(members):3} true/est "
                    f"mAP50 {t['mAP50']:.3f}/{e['mAP50']:.3f} "
                    f"recall {t['recall']:.3f}/{e['recall']:.3f} moved {sorted(moved)}"
                )
    return out, params.monitor


def run(work: Path, size: str, project: Path) -> list[Row]:
    from bench.gate import _model

    s = SIZES[size]
    work.mkdir(parents=True, exist_ok=True)
    project = _model(work, project)
    start = time.perf_counter()
    (kept := result_path("estimate", size, suffix="")).mkdir()
    found, monitor = points(project, work, s, kept)
    print(f"estimate bench: {len(found)} points in {time.perf_counter() - start:.0f} s")
    (kept / "points.json").write_text(json.dumps(found, default=float))  # to re-rank
    print(f"estimate bench: points, detections and the estimator saved under {kept}")
    return report(found, monitor, s["images"])


def report(found: list[dict], monitor, images: int) -> list[Row]:
    """The table's rows and the diagnostics printed beside them, from a run's points (a
    saved run's again: `python -m bench.estimate bench/results/estimate-<size>-<time>`).
    `monitor`: the `monitor` params (the alarm's drop, what anchoring on an audit does)."""
    alarm, needs = monitor.estimate_drop, monitor.estimate_needs_drift
    whole = [p for p in found if p["slice"] == "all"]
    rows = []
    for mode in MODES:
        for metric in ("mAP50", "recall"):
            rows += score(found, alarm, mode, metric, needs=needs) + checks.ceiling(found, metric)
            rows += checks.twin(found, mode, metric)
            rows += score(whole, alarm, mode, metric, f"{images} images", needs) + checks.ceiling(
                whole, metric, f"{images} images"
            )
            print(f"estimate bench: {metric} flagged at other monitor.estimate_drop: "
                  f"{trade(found, mode, metric, needs)}; without the drift check's "
                  f"corroboration: {trade(found, mode, metric, False)}")  # fmt: skip
            quiet = [p["batch"] for p in whole if not p.get("moved", True)]
            print(f"estimate bench: batches whose drift check saw nothing move: {quiet}")
            print(f"estimate bench: {metric} {checks.told(found, metric)}")
            print(f"estimate bench: {metric} {checks.by_group(found, mode, metric)}")
            print(f"estimate bench: {metric} {checks.by_slice(found, mode, metric)}")
            print(f"estimate bench: {metric} {checks.by_shift(found, mode, metric)}")
            print(f"estimate bench: {metric} {checks.additive(found, mode, metric)}")
            if metric == "mAP50":
                print(f"estimate bench: {shown.ranks(found, mode)}")
            rows += _anchored(found, monitor, mode, metric)
    print(f"estimate bench: {shown.classes(found)}")
    return rows


def _anchored(found: list[dict], monitor, mode: str, metric: str) -> list[Row]:
    """Each tone group anchored on a labelled audit (`monitoring.anchor`): printed for an
    audit under each of `checks.AUDITS`, the table's row for the unshifted one. Only the
    figures monitoring anchors (`monitor.anchor_figures`) get a row; the others print."""
    rows = []
    for audit in checks.AUDITS:
        moved = checks.anchored(found, mode, metric, monitor.estimate_min_images, audit)
        if moved == found:  # one seed, or no tone group of estimate_min_images: none moved
            continue
        label = f"anchored on an audit of the other seed's '{audit}' batch"
        new = score(
            moved, monitor.estimate_drop, mode, metric, label, monitor.estimate_needs_drift
        )
        inside, mae, rho = (r.value for r in new[:3])  # its alarms: the label-free ones
        print(f"estimate bench: {metric} {label}: MAE {mae:.3f}, rho {rho:.3f}, truth "
              f"inside the interval {inside:.0f} of {len(moved)}")  # fmt: skip
        if audit == checks.AUDITS[0] and metric in monitor.anchor_figures:
            rows += new
    return rows


def _complete(kept: Path, found: list[dict], again: bool = False) -> list[dict]:
    """A saved run's points with what an older bench did not keep (the served-only truth,
    each class's row) worked out from its kept detections, the rows by today's estimator;
    `again`: every point's estimate made again by today's estimator (its saved fit), to
    score a change to the method on the same batches (the intervals stay the run's)."""
    from skintwin.training.detstats import DetectionStats
    from skintwin.training.estimator import Estimator

    doc = json.loads((kept / "estimator.json").read_text())["estimator"]
    estimator, out = Estimator.from_dict(doc), []
    for p in found:
        whole = p["slice"] == "all"
        if not again and SERVED in p and (not whole or "classes" in p):
            out.append(p)
            continue
        shift, seed = p["batch"].rsplit("/", 1)
        path = kept / f"{shift}-{seed}-served.npz"
        with np.load(path) as z:
            members = z[f"slice_{p['slice']}"]
        served = DetectionStats.load(path).subset(members)
        p = {**p, SERVED: shown.truth(served)}
        if again or whole:
            est = estimator.estimate_stats(served, OPERATING, n_boot=1, count=MODES[0])
        if again:
            p[MODES[0]] = {k: est[k]["value"] for k in ("mAP50", "precision", "recall")}
        if whole:
            labelled = DetectionStats.load(kept / f"{shift}-{seed}-labelled.npz")
            p["classes"] = shown.class_rows(est["classes"], labelled, estimator.names)
        out.append(p)
    return out


if __name__ == "__main__":  # re-rank a saved run: python -m bench.estimate <its folder>
    import argparse

    from bench.common import table
    from skintwin.params import load_params

    parser = argparse.ArgumentParser(description="Re-rank a saved estimate benchmark run.")
    parser.add_argument("run", type=Path, help="bench/results/estimate-<size>-<time>")
    parser.add_argument("--again", action="store_true",
                        help="re-estimate points an earlier estimator made")  # fmt: skip
    args = parser.parse_args()
    kept = args.run
    if not (kept / "points.json").is_file():
        parser.error(f"{kept}: no points.json (a folder `--only estimate` saved)")
    saved = _complete(kept, json.loads((kept / "points.json").read_text()), args.again)
    monitor = load_params(Path("params.yaml")).monitor
    print(table(report(saved, monitor, SIZES[kept.name.split("-")[1]]["images"])))
