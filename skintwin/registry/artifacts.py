"""What a registered version carries beside its weights, and what it serves on."""

from __future__ import annotations

from pathlib import Path

# pyfunc artifact name -> the evaluate stage's file (fitted with this run's evaluation)
ARTIFACTS = {
    "estimator": "estimator.json",  # the label-free performance estimator
    "embedding": "embedding.npz",  # the drift embedding's projection
    "onnx": "model.onnx",  # the ONNX export ...
    "parity": "parity.json",  # ... and whether it may serve
    "seen": "seen.json",  # the photos it trained on: the gate never tests it on them
}


def version_artifacts(evaluate_dir: Path) -> dict[str, Path]:
    """The evaluate stage's files a version is logged with (those that exist)."""
    found = {key: Path(evaluate_dir) / name for key, name in ARTIFACTS.items()}
    return {key: path for key, path in found.items() if path.is_file()}


def runtime_tags(parity: Path | None) -> dict[str, str]:
    """What the version serves on and why (`serving.runtime`, `parity.passed`,
    `parity.reason`): ONNX only when its export passed the parity check."""
    from skintwin.model.onnx import parity_verdict

    passed, why = parity_verdict(parity)
    return {
        "serving.runtime": "onnx" if passed else "pytorch",
        "parity.passed": str(passed).lower(),
        "parity.reason": why[:500],
    }
