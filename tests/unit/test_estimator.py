"""The label-free performance estimate on simulated detections whose truth is known: fitted
on one draw, it recovers another draw's mAP50, precision and recall, follows a degradation,
and survives a JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skintwin.errors import SkinTwinError
from skintwin.training.detstats import N_IOU, DetectionStats
from skintwin.training.estimator import Estimator
from skintwin.training.truth import true_figures

NAMES = ("acne", "mole", "rash")


def simulate(
    seed: int, n: int = 200, found: float | tuple = 0.95, tp_conf=(6, 2), mix=None
) -> DetectionStats:
    """A detector on `n` images: each true box (classes drawn by `mix`, else alike) is found
    with probability `found` (one per class, or one for all) at a confidence ~ Beta(tp_conf);
    a few false positives per image at ~ Beta(1, 6)."""
    rng = np.random.default_rng(seed)
    found = np.broadcast_to(np.asarray(found, float), (3,))
    conf, tp, cls_, det_image, gt_cls, gt_image = [], [], [], [], [], []
    for i in range(n):
        k = rng.integers(1, 4)
        for c in rng.integers(0, 3, k) if mix is None else rng.choice(3, k, p=mix):
            gt_cls.append(c)
            gt_image.append(i)
            if rng.random() < found[c]:
                conf.append(rng.beta(*tp_conf))
                tp.append(True)
                cls_.append(c)
                det_image.append(i)
        for _ in range(rng.poisson(3)):
            conf.append(rng.beta(1, 6))
            tp.append(False)
            cls_.append(rng.integers(0, 3))
            det_image.append(i)
    return DetectionStats(
        files=tuple(f"{i}.jpg" for i in range(n)),
        tp=np.repeat(np.array(tp, bool)[:, None], N_IOU, axis=1),
        conf=np.array(conf),
        pred_cls=np.array(cls_, int),
        det_image=np.array(det_image, int),
        gt_cls=np.array(gt_cls, int),
        gt_image=np.array(gt_image, int),
    )


@pytest.mark.parametrize(("count", "tolerance"), [("candidates", 0.03), ("max", 0.05)])
def test_fitted_on_one_draw_it_recovers_another(count: str, tolerance: float) -> None:
    estimator = Estimator.fit(simulate(0, n=400), NAMES, floor=0.25)
    errors = {"mAP50": [], "precision": [], "recall": []}
    for seed in range(1, 6):
        stats = simulate(seed)
        true = true_figures(stats)
        est = estimator.estimate_stats(stats, n_boot=100, count=count)
        for metric, found in errors.items():
            found.append(abs(est[metric]["value"] - true[metric]))
            assert est[metric]["lo"] <= est[metric]["value"] <= est[metric]["hi"]
    for metric, found in errors.items():
        assert np.mean(found) <= tolerance, (metric, found)


def test_per_class_figures_follow_the_class_that_got_worse() -> None:
    """Moles found less surely: the mole class's estimated recall falls, the others' not."""
    estimator = Estimator.fit(simulate(0, n=400), NAMES, floor=0.25)
    plain = simulate(3)
    worse = simulate(3)
    moles = (worse.pred_cls == 1) & worse.tp[:, 0]
    rng = np.random.default_rng(0)
    worse.conf[moles] = rng.beta(2, 4, moles.sum())  # its true boxes now look unsure
    before = estimator.estimate_stats(plain, n_boot=10)["classes"]
    after = estimator.estimate_stats(worse, n_boot=10)["classes"]
    assert set(before) == set(NAMES)
    assert after["mole"]["recall"] < before["mole"]["recall"] - 0.15
    assert abs(after["acne"]["recall"] - before["acne"]["recall"]) < 0.05


def test_a_lesion_mix_moved_to_the_class_it_finds_least_keeps_each_class_recall() -> None:
    """Acne found 70% of the time, moles 95%, rashes 99%: a window of mostly acne has the
    same mean recall over classes as a balanced one (0.88), though it finds fewer of its
    lesions. Splitting the lesion count by what each class's finds imply at its own
    validation coverage keeps that; split by the finds alone, every class would get one
    recall and the window would read about 0.75. Each class's own row keeps its recall too:
    counted from its validation rate, moles and rashes (now rare) read about 0.3 for 0.95."""
    found, acne_mostly = (0.7, 0.95, 0.99), (0.8, 0.1, 0.1)
    estimator = Estimator.fit(simulate(0, n=600, found=found), NAMES, floor=0.25)
    for seed in range(1, 6):
        stats = simulate(seed, n=400, found=found, mix=acne_mostly)
        pooled = stats.tp[:, 0][stats.conf >= 0.25].sum() / len(stats.gt_cls)
        true, est = true_figures(stats), estimator.estimate_stats(stats, n_boot=50)
        assert pooled < true["recall"] - 0.08  # the mix alone moves the pooled share
        assert abs(est["recall"]["value"] - true["recall"]) < 0.04, seed
        assert abs(est["mAP50"]["value"] - true["mAP50"]) < 0.05, seed
        for k, name in enumerate(NAMES):
            on = (stats.pred_cls == k) & (stats.conf >= 0.25)
            recall = stats.tp[on, 0].sum() / (stats.gt_cls == k).sum()
            # within 0.1: a row in a window like this reads its class's validation coverage
            # (acne's measured 0.645 on the fitting draw, where 0.7 was simulated)
            assert abs(est["classes"][name]["recall"] - recall) < 0.1, (seed, name)


def test_lesions_it_no_longer_finds_count_only_with_the_prior() -> None:
    """Counting lesions from the candidates alone cannot see the ones a shift hides; the
    validation rate of lesions per image (the default takes the larger) can."""
    estimator = Estimator.fit(simulate(0, n=400), NAMES, floor=0.25)
    plain, worse = simulate(7), simulate(7, tp_conf=(2.5, 3))  # true boxes found less surely
    assert true_figures(worse)["recall"] < true_figures(plain)["recall"] - 0.15
    drop = {
        count: estimator.estimate_stats(plain, n_boot=20, count=count)["recall"]["value"]
        - estimator.estimate_stats(worse, n_boot=20, count=count)["recall"]["value"]
        for count in ("max", "candidates")
    }
    assert drop["max"] > 0.15 and drop["candidates"] < 0.05, drop


def test_recall_counts_lesions_at_the_labelled_rate_not_the_few_validation_photos() -> None:
    """Fitted on 40 validation photos that hold fewer lesions than photos do (one to two a
    photo, against one to three), on a window whose detector now finds 80% of the lesions
    instead of 95% (a true fall of 0.11-0.19): given the rate over the training and
    validation labels, the estimate falls by more than `monitor.estimate_drop` (0.05) in
    19 of 20 seeded fits; with the validation photos' own count, the candidates outnumber
    it before and after, and recall's estimate does not move at all (0 of 20)."""

    def few(seed: int) -> DetectionStats:  # validation photos with 1-2 lesions each
        stats = simulate(seed, n=120)
        keep = np.flatnonzero(np.bincount(stats.gt_image, minlength=len(stats)) <= 2)[:40]
        return stats.subset(keep)

    tracked = {"labelled rate": 0, "validation count": 0}
    for seed in range(20):
        val = few(300 + seed)
        window = simulate(400 + seed, found=0.8)
        plain = simulate(400 + seed)
        fall = true_figures(plain)["recall"] - true_figures(window)["recall"]
        fits = {
            "labelled rate": Estimator.fit(val, NAMES, floor=0.25, lesion_rate=2.0),
            "validation count": Estimator.fit(val, NAMES, floor=0.25),
        }
        for name, estimator in fits.items():
            before = estimator.estimate_stats(plain, n_boot=1)["recall"]["value"]
            after = estimator.estimate_stats(window, n_boot=1)["recall"]["value"]
            assert fall >= 0.10
            tracked[name] += before - after > 0.05
    print(tracked)
    assert tracked["labelled rate"] >= 18 and tracked["validation count"] == 0, tracked


def test_the_interval_carries_the_calibrations_own_error() -> None:
    """Fitted on 60 validation images, each a 200-image window's 95% interval holds the
    detector's true figure (on 4,000 images) in 19 (recall) and 18 (mAP50) of 20 seeded
    fits; a bootstrap over the window alone, blind to the calibration's 60 images, in 7
    and 6 of 20. As production fits it (recall's lesions at the labels' rate), recall's
    holds it in 17 of 20: a window's count is the larger of the rate's and the candidates',
    and where the two agree the larger runs high, a bias the offset (measured told the
    images' own count) does not see. The README says so."""
    from dataclasses import replace

    population = true_figures(simulate(999, n=4000))
    kinds = ("joined", "window", "at the labels' rate")
    inside = {name: {"recall": 0, "mAP50": 0} for name in kinds}
    for seed in range(20):
        estimator = Estimator.fit(simulate(100 + seed, n=60), NAMES, floor=0.25)
        rated = Estimator.fit(simulate(100 + seed, n=60), NAMES, floor=0.25, lesion_rate=2.0)
        window = simulate(200 + seed)
        for name, est in zip(
            kinds, (estimator, replace(estimator, offset_sd=None), rated), strict=True
        ):
            out = est.estimate_stats(window, n_boot=100)
            for metric in inside[name]:
                inside[name][metric] += (
                    out[metric]["lo"] <= population[metric] <= out[metric]["hi"]
                )
    print(inside)
    assert min(inside["joined"].values()) >= 17, inside
    assert all(inside["window"][m] < inside["joined"][m] for m in ("recall", "mAP50")), inside
    assert inside["at the labels' rate"]["recall"] >= 15, inside  # 17: below 95%, known


def test_round_trip_and_too_little_to_fit() -> None:
    estimator = Estimator.fit(simulate(0), NAMES)
    again = Estimator.from_dict(json.loads(json.dumps(estimator.to_dict())))
    stats = simulate(3)
    assert again.estimate_stats(stats, n_boot=20) == estimator.estimate_stats(stats, n_boot=20)
    with pytest.raises(SkinTwinError, match="validation detections"):
        Estimator.fit(simulate(0, n=2), NAMES)


def test_a_window_where_nothing_is_claimed_has_precision_zero_not_nan() -> None:
    """A model that claims nothing at the operating point (a 1-epoch model does): its
    precision is 0, as Ultralytics reports it, in the truth and in the estimate alike, so
    the test split's baseline in `estimator.json` stays valid JSON and a fall is computable;
    where some class claims something, precision averages those classes only."""
    import warnings

    estimator = Estimator.fit(simulate(0, n=400), NAMES, floor=0.01)
    silent = simulate(5)
    silent.conf[:] = np.minimum(silent.conf, 0.2)  # every detection under 0.25
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" on the way
        true = true_figures(silent)
        est = estimator.estimate_stats(silent, n_boot=20)
    assert true["precision"] == 0.0 and true["recall"] == 0.0
    assert est["precision"]["value"] == 0.0 and est["recall"]["value"] <= 0.01
    json.loads(json.dumps({**true, **est}, allow_nan=False))  # strict JSON: no NaN
    nothing = Estimator.fit(simulate(0, n=400), NAMES, floor=0.25).estimate_stats(silent)
    assert nothing["classes"] == {} and nothing["mAP50"]["value"] == 0.0  # no candidate

    some = simulate(5)
    some.conf[some.pred_cls != 0] = 0.1  # only acne claimed at 0.25
    on = (some.pred_cls == 0) & (some.conf >= 0.25)
    assert true_figures(some)["precision"] == pytest.approx(some.tp[on, 0].mean())


def test_the_services_detections_are_matched_once_each_most_confident_first() -> None:
    from skintwin.training.served import match

    classes = np.array([1, 1])
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    dets = [
        {"class_name": "mole", "confidence": 0.6, "box": [0, 0, 10, 10]},  # a duplicate
        {"class_name": "mole", "confidence": 0.9, "box": [1, 0, 10, 10]},  # the match
        {"class_name": "acne", "confidence": 0.8, "box": [20, 20, 30, 30]},  # wrong class
        {"class_name": "mole", "confidence": 0.7, "box": [20, 20, 26, 26]},  # IoU 0.36
    ]
    assert match(dets, classes, boxes, NAMES).tolist() == [False, True, False, False]


@pytest.mark.parametrize("seed", range(20))
def test_isotonic_knots_are_scikit_learns(seed: int) -> None:
    """The numpy fit keeps the knots scikit-learn's IsotonicRegression keeps, on seeded
    confidences with ties, flat runs and out-of-range ends (`y` 0/1 as the estimator
    fits, or continuous)."""
    from sklearn.isotonic import IsotonicRegression

    from skintwin.training.isotonic import isotonic_knots

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    x = np.round(rng.uniform(0, 1, n), int(rng.integers(1, 4)))  # ties
    y = (rng.uniform(0, 1, n) < x).astype(float) if seed % 2 else rng.normal(x, 0.4)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y)
    xs, ys = isotonic_knots(x, y)
    np.testing.assert_array_equal(xs, iso.X_thresholds_)
    np.testing.assert_allclose(ys, iso.y_thresholds_, atol=1e-12)
    grid = np.linspace(-0.5, 1.5, 101)
    np.testing.assert_allclose(np.interp(grid, xs, ys), iso.predict(grid), atol=1e-12)


def test_the_lesion_rate_counts_every_photo_of_the_splits_named(tmp_path) -> None:
    """Boxes per photo over the training and validation splits: a background photo (empty
    label file, or none) counts as a photo with no lesion; the test split is not read."""
    from skintwin.training.version_estimator import lesion_rate

    labels = {"train": {"a": "0 .5 .5 .1 .1\n1 .2 .2 .1 .1\n", "b": "", "c": None},
              "val": {"d": "2 .5 .5 .2 .2\n\n"}, "test": {"e": "0 .5 .5 .1 .1\n" * 9}}  # fmt: skip
    for split, files in labels.items():
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        for stem, text in files.items():
            (tmp_path / "images" / split / f"{stem}.jpg").write_bytes(b"")
            if text is not None:
                (tmp_path / "labels" / split / f"{stem}.txt").write_text(text)
    assert lesion_rate(tmp_path, ("train", "val")) == 0.75
    assert lesion_rate(tmp_path, ("missing",)) is None
