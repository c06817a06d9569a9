"""The ONNX export with its parity gate: the champion's export passes and serves; a broken
export fails with a reason and the version stays on PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
NAME = "skin-twin-detector"


def test_the_champions_export_passed_and_serves(champion: Path, monkeypatch) -> None:
    import mlflow

    from skintwin.serving.loader import ModelLoader

    parity = json.loads((champion / "reports/evaluate/parity.json").read_text())
    assert parity["passed"], parity["reasons"]
    assert parity["boxes"]["pytorch"][0] == parity["boxes"]["pytorch"][1]
    assert abs(parity["mAP50"]["all"]["delta"]) <= 0.005 and parity["opset"] == 17
    estimator = json.loads((champion / "reports/evaluate/estimator.json").read_text())
    assert estimator["runtime"] == "onnx"  # fitted on what production runs: the export
    uri = f"sqlite:///{champion / 'mlflow.db'}"  # not the global URI an earlier test moved
    client = mlflow.tracking.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias(NAME, "champion")
    assert version.tags["serving.runtime"] == "onnx" and version.tags["parity.passed"] == "true"

    images = sorted((champion / "batches/normal/images").iterdir())[:6]
    served = ModelLoader(project_dir=champion).load(NAME)
    assert served.runtime == "onnx"
    monkeypatch.setenv("SKINTWIN_RUNTIME", "pytorch")  # the setting that opts out
    torch_model = ModelLoader(project_dir=champion).load(NAME)
    assert torch_model.runtime == "pytorch"
    a = served.predict([str(p) for p in images], imgsz=64)
    b = torch_model.predict([str(p) for p in images], imgsz=64)
    assert [len(x["detections"]) for x in a] == [len(x["detections"]) for x in b]
    assert all(len(x["embedding"]) == served.projection.dims for x in a)  # no second pass


def _broken(onnx_file: Path, out: Path) -> Path:
    """The export with its class scores' biases raised: it loads and runs, and every
    confidence is wrong (as an export with a mistaken normalisation would be)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_file))
    for t in model.graph.initializer:
        if ".cv3." in t.name and t.name.endswith(".2.bias"):  # the class-score convolutions
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) + np.float32(3), t.name))
    onnx.save(model, str(out))
    return out


def test_a_broken_export_fails_parity_and_the_version_stays_on_pytorch(
    champion: Path, tmp_path: Path, monkeypatch
) -> None:
    from skintwin.errors import SkinTwinError
    from skintwin.model.onnx import serving_weights
    from skintwin.params import load_params
    from skintwin.registry.artifacts import runtime_tags
    from skintwin.training.evaluation import evaluate_weights
    from skintwin.training.parity import check_parity

    params = load_params(champion / "params.yaml")
    weights = champion / "models/train/weights/best.pt"
    data = champion / "data/processed"
    test = evaluate_weights(weights, data, params.evaluate, "mAP50", "cpu")
    broken = _broken(champion / "reports/evaluate/model.onnx", tmp_path / "broken.onnx")
    verdict = check_parity(weights, broken, data, test, ("acne", "mole", "rash"), 0.01, 64)
    assert not verdict["passed"] and verdict["reasons"]
    parity = tmp_path / "parity.json"
    parity.write_text(json.dumps(verdict))
    tags = runtime_tags(parity)
    assert tags["serving.runtime"] == "pytorch" and tags["parity.passed"] == "false"
    assert tags["parity.reason"] == "; ".join(verdict["reasons"])[:500]
    assert serving_weights(weights, broken, parity) == str(weights)
    monkeypatch.setenv("SKINTWIN_RUNTIME", "onnx")
    with pytest.raises(SkinTwinError, match="serves on PyTorch"):
        serving_weights(weights, broken, parity)


def test_shared_passes_keep_the_services_detections(champion: Path) -> None:
    """The evaluate stage predicts the test split once per runtime, down to parity's
    floor, and the estimator reads its pass at the serving confidence from it: the same
    detections as a pass of its own, and one detector per weights file."""
    from skintwin.training.parity import LOW_CONF
    from skintwin.training.served import ServedRuns

    weights = champion / "models/train/weights/best.pt"
    images = sorted((champion / "data/processed/images/test").iterdir())[:24]
    shared = ServedRuns(64)
    low = shared.predict(weights, images, LOW_CONF)
    served = shared.predict(weights, images, 0.25)
    alone = ServedRuns(64).predict(weights, images, 0.25)
    assert sum(len(p["detections"]) for p in low) > sum(len(p["detections"]) for p in alone)
    assert served == alone
    assert shared.detector(weights) is shared.detector(weights)


def test_an_export_that_fails_parity_leaves_the_estimator_on_the_pt(
    champion: Path, tmp_path: Path, monkeypatch
) -> None:
    """The evaluate stage whose export fails parity: the passes it made ahead on the export
    are not what the estimator and the projection are fitted on; they are fitted on the
    `.pt` that will serve, exactly as a fit on the `.pt` alone gives them."""
    import numpy as np

    import skintwin.model.onnx as onnx_module
    from skintwin.params import load_params
    from skintwin.steps.evaluate import run_evaluate
    from skintwin.training.embedding import fit_projection
    from skintwin.training.served import ServedRuns
    from skintwin.training.version_estimator import fit_for_version

    export = onnx_module.export_onnx
    monkeypatch.setattr(  # the real export, then broken as `_broken` breaks it
        onnx_module, "export_onnx", lambda w, out, *a: _broken(export(w, out, *a), out)
    )
    params = load_params(champion / "params.yaml")
    weights, data = champion / "models/train/weights/best.pt", champion / "data/processed"
    conf, imgsz = 0.01, params.monitor.imgsz  # the 1-epoch model finds nothing at 0.25
    out = tmp_path / "evaluate"
    result = run_evaluate(weights, data, params.evaluate, out, "mAP50", "cpu", conf, imgsz)
    assert not json.loads((out / "parity.json").read_text())["passed"]
    fitted = json.loads((out / "estimator.json").read_text())
    assert fitted.pop("runtime") == "pytorch"
    runs = ServedRuns(imgsz)
    alone = fit_for_version(weights, data, params.evaluate, "cpu", result, conf, imgsz, runs=runs)
    assert fitted == json.loads(json.dumps(alone))
    val = sorted((data / "images/val").iterdir())

    def confidences(model: Path) -> list:  # of the validation split, as the service keeps them
        return [[d["confidence"] for d in p["detections"]] for p in runs.predict(model, val, conf)]

    assert confidences(out / "model.onnx") != confidences(weights)  # what a wrong fit would read
    projection = np.load(out / "embedding.npz")
    expected = fit_projection(weights, data, params.evaluate, imgsz, runs)
    np.testing.assert_allclose(projection["components"], expected.components, atol=1e-6)
