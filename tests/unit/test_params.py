from __future__ import annotations

import copy

import pytest
import yaml

from skintwin.errors import SkinTwinError
from skintwin.params import load_params, parse_params
from tests.conftest import REPO


def test_repo_params_load() -> None:
    p = load_params(REPO / "params.yaml")
    assert p.train.epochs >= 1
    assert p.validate_.min_images_per_class >= 1


def _broken(base: dict, dotted: str, value: object) -> dict:
    raw = copy.deepcopy(base)
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return raw


_DELETE = object()


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        ("train.epochs", _DELETE, "train.epochs: required key is missing"),
        ("train.epochs", "ten", "train.epochs"),
        ("train.epochs", 0, "train.epochs"),
        ("train.batch", -4, "train.batch"),
        ("train.imgsz", 16, "train.imgsz"),
        ("train.lr0", "fast", "train.lr0"),
        ("train.optimizer", "Adagrad", "train.optimizer"),
        ("train.augment.mosaic", 2.0, "train.augment.mosaic"),
        ("train.epoch", 3, "train.epoch: unknown key"),
        ("preprocess.test_fraction", 0.9, "preprocess.test_fraction"),
        ("validate.min_images_per_class", 0, "validate.min_images_per_class"),
        ("promote.floor", 1.5, "promote.floor"),
        ("generate.class_weights", {"wart": 1.0}, "unknown classes"),
        ("data.path", 5, "data.path"),
        # a p-value test's threshold is a probability: 5 (meant "5 %") made every window drift
        (
            "monitor.num_threshold",
            5,
            "monitor.num_threshold: a p-value threshold must be in (0, 1) for 'ks'",
        ),
        (
            "monitor.cat_threshold",
            1.0,
            "monitor.cat_threshold: a p-value threshold must be in (0, 1)",
        ),
        (
            "monitor.per_column",
            {"brightness": {"method": "ks", "threshold": 2}},
            "monitor.per_column.brightness.threshold: a p-value threshold must be in (0, 1)",
        ),
        ("monitor.embed_threshold", 1e-5, "monitor.embed_threshold: must be at least 0.001"),
        ("monitor.within_threshold", 1.0, "monitor.within_threshold: Input should be less than 1"),
        # YAML 1.1 reads 1e-3 as text: the error says how to write it as a number
        (
            "train.lr0",
            "1e-3",
            "train.lr0: Input should be a valid number (got '1e-3'); YAML "
            "reads 1e-3 as text: write 1.0e-3",
        ),
    ],
)
def test_bad_params_name_the_key(
    base_params: dict, dotted: str, value: object, expected: str
) -> None:
    with pytest.raises(SkinTwinError) as err:
        parse_params(_broken(base_params, dotted, value))
    assert expected in str(err.value)


def test_missing_section_is_named(base_params: dict) -> None:
    raw = copy.deepcopy(base_params)
    del raw["evaluate"]
    with pytest.raises(SkinTwinError, match="evaluate: required key is missing"):
        parse_params(raw)


def test_every_error_is_listed_at_once(base_params: dict) -> None:
    raw = _broken(_broken(base_params, "train.epochs", 0), "promote.metric", "f1")
    with pytest.raises(SkinTwinError) as err:
        parse_params(raw)
    assert "train.epochs" in str(err.value) and "promote.metric" in str(err.value)


def test_missing_and_invalid_files(tmp_path) -> None:
    with pytest.raises(SkinTwinError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(SkinTwinError, match="not valid YAML"):
        load_params(bad)
    bad.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(SkinTwinError, match="mapping"):
        load_params(bad)


def test_int_accepted_where_float_expected(base_params: dict) -> None:
    p = parse_params(_broken(base_params, "promote.floor", 0))
    assert p.promote.floor == 0.0


def test_a_distance_threshold_may_exceed_one(base_params: dict) -> None:
    raw = _broken(base_params, "monitor.num_method", "wasserstein")
    assert parse_params(_broken(raw, "monitor.num_threshold", 50)).monitor.num_threshold == 50
