"""The ONNX export a version carries beside its `.pt`: Ultralytics' own exporter, a fixed
opset, dynamic batch and image size (so the service letterboxes exactly as with the `.pt`),
nothing auto-installed, and one extra graph output: the embedding layer's pooled feature
map, so that the drift embedding costs no second pass on ONNX Runtime either."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from skintwin.errors import SkinTwinError

OPSET = 17
EMBEDDING_OUTPUT = "embedding"


def export_onnx(weights: Path, out: Path, imgsz: int, embed_layer: int | None = None) -> Path:
    """Export `weights` to `out` (an `.onnx` file), with the pooled output of `embed_layer`
    as a second graph output when given."""
    from skintwin.model.yolo import load_weights

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model.pt"
        shutil.copy(weights, local)  # the exporter writes beside its input
        model = load_weights(local)
        made = model.export(format="onnx", dynamic=True, simplify=False, opset=OPSET,
                            imgsz=imgsz, device="cpu", verbose=False)  # fmt: skip
        if embed_layer is not None:
            add_embedding_output(Path(made), embed_layer)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(made, out)
    return out


def add_embedding_output(path: Path, layer: int) -> None:
    """Append GlobalAveragePool → Flatten of layer `layer`'s output as graph output
    "embedding" (batch × channels). The layer's output is the one tensor its nodes
    (named `/model.<layer>/...` by the exporter) hand to the rest of the graph."""
    import onnx
    from onnx import TensorProto, helper

    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    prefix = f"/model.{layer}/"
    inside = {o for n in graph.node if n.name.startswith(prefix) for o in n.output}
    leaving = {t for n in graph.node if not n.name.startswith(prefix) for t in n.input} & inside
    if len(leaving) != 1:
        raise SkinTwinError(f"ONNX export: cannot find the one output of layer {layer}")
    pool = helper.make_node("GlobalAveragePool", [leaving.pop()], ["/embed/pool"], name="pool")
    flat = helper.make_node("Flatten", ["/embed/pool"], [EMBEDDING_OUTPUT], name="flat", axis=1)
    graph.node.extend([pool, flat])
    graph.output.append(
        helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, ["batch", "channels"])
    )
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(path))


RUNTIMES = ("auto", "onnx", "pytorch")


def export_imgsz(path: str | Path) -> int | None:
    """The image size an export was made for (Ultralytics' metadata), or None."""
    import ast

    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    size = ast.literal_eval(meta["imgsz"]) if "imgsz" in meta else None
    return int(max(size)) if isinstance(size, list | tuple) else size


def parity_verdict(parity: str | Path | None) -> tuple[bool, str]:
    """(passed, why) from a version's `parity.json` (absent: not passed)."""
    import json

    if parity is None or not Path(parity).is_file():
        return False, "no ONNX parity check on record"
    doc = json.loads(Path(parity).read_text())
    return bool(doc.get("passed")), "; ".join(doc.get("reasons") or []) or "passed"


def serving_weights(weights, onnx=None, parity=None, setting: str | None = None) -> str:
    """What a version serves from: its ONNX export when the export passed the parity check
    and `SKINTWIN_RUNTIME` (auto | onnx | pytorch; default auto) allows, else the `.pt`.
    `onnx` insists: a version without a passing export is an error, not a silent fallback."""
    import os

    setting = (setting or os.environ.get("SKINTWIN_RUNTIME") or "auto").strip().lower()
    if setting not in RUNTIMES:
        raise SkinTwinError(f"SKINTWIN_RUNTIME: {setting!r} is not one of {', '.join(RUNTIMES)}")
    if setting == "pytorch":
        return str(weights)
    passed, why = parity_verdict(parity)
    if onnx is not None and Path(onnx).is_file() and passed:
        return str(onnx)
    if setting == "onnx":
        raise SkinTwinError(f"SKINTWIN_RUNTIME=onnx, but this version serves on PyTorch: {why}")
    return str(weights)
