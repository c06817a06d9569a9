"""The names of this domain that parameters and data are checked against: lesion classes,
skin-tone groups, the columns a drift check compares and Evidently's drift tests. They live
here, in the lowest layer, so that params, data and monitoring share one spelling."""

from __future__ import annotations

LESION_CLASSES = ("acne", "mole", "rash")  # the demo generator's classes
TONE_GROUPS = ("very_light", "light", "intermediate", "tan", "brown", "dark")  # light → dark
# The columns a drift check compares: image features and prediction features (numeric),
# and the tone group (categorical).
IMAGE_FEATURES = ("width", "height", "brightness", "contrast", "saturation", "sharpness", "ita")
PREDICTION_FEATURES = ("n_detections", "mean_confidence", "box_size")
PREDICTION_CATEGORIES = ("main_class",)  # the class found most often in an image, or "none"
NUMERIC_DRIFT_COLUMNS = (*IMAGE_FEATURES, *PREDICTION_FEATURES)
CATEGORICAL_DRIFT_COLUMNS = ("tone_group", *PREDICTION_CATEGORIES)
# What a drifted column says moved: how photos are taken, who is photographed, or what the
# model finds (a changed lesion mix, or a model that no longer finds what it did).
DRIFT_KINDS = {
    "acquisition": ("width", "height", "brightness", "contrast", "saturation", "sharpness"),
    "tone mix": ("ita", "tone_group"),
    "prediction mix": (*PREDICTION_FEATURES, *PREDICTION_CATEGORIES),
}
# Evidently 0.7's drift tests by the column type they accept (its stat-test registry).
# fisher_exact is left out: it takes two categories and the tone group has six.
NUMERIC_METHODS = frozenset(
    {"ks", "wasserstein", "anderson", "cramer_von_mises", "ed", "empirical_mmd", "es"}
    | {"mannw", "t_test", "hellinger", "jensenshannon", "kl_div", "psi"}
)
CATEGORICAL_METHODS = frozenset(
    {"chisquare", "g_test", "z", "TVD", "hellinger", "jensenshannon", "kl_div", "psi"}
    | {"chisquare_2sample"}  # ours (monitoring.drift): calibrated with a small reference
)
# Tests whose score is a p-value (drift when score < threshold); the others are distances
# (drift when score ≥ threshold).
P_VALUE_METHODS = frozenset(
    {"ks", "chisquare", "z", "g_test", "t_test", "mannw", "anderson", "cramer_von_mises"}
    | {"es", "empirical_mmd", "TVD", "chisquare_2sample"}
)
