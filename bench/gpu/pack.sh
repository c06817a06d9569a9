#!/usr/bin/env bash
# Pack, here, what a GPU host with Python 3.12 and PyTorch but no package index lacks to run
# the training flow for real (Prefect, DVC, MLflow, Ultralytics and what they need), at the
# versions installed in this checkout's .venv: one xz tarball, .gpu/site.tar.xz (~52 MB;
# a device run carries `.gpu`). Then, there: `bash bench/gpu/run.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
OUT=.gpu
rm -rf "$OUT" && mkdir -p "$OUT/wheels"
PLATFORMS=()
for tag in manylinux1 manylinux2014 manylinux_2_5 manylinux_2_17 manylinux_2_24 manylinux_2_26 \
  manylinux_2_27 manylinux_2_28 manylinux_2_31 manylinux_2_34; do
  PLATFORMS+=(--platform "${tag}_x86_64")
done
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}")
# the training flow's own needs; opencv-python is the host's opencv-python-headless (cv2)
"$PY" bench/gpu/closure.py bench/gpu/host_packages.txt prefect dvc mlflow-skinny ultralytics \
  sqlalchemy alembic pydantic fastapi uvicorn jsonschema python-multipart \
  | grep -v -E '^(opencv-python|polars|polars-runtime-32|antlr4-python3-runtime)==' \
  > "$OUT/wanted.txt"
"$PY" -m pip download -q --no-deps "${TARGET[@]}" -d "$OUT/wheels" -r "$OUT/wanted.txt"
"$PY" -m pip download -q --no-deps "${TARGET[@]}" -d "$OUT/wheels" "polars==1.0.0"  # one wheel
"$PY" -m pip wheel -q --no-deps -w "$OUT/wheels" "antlr4-python3-runtime==4.9.3"  # sdist only
"$PY" -m pip install -q --no-deps --no-compile --target "$OUT/site" "${TARGET[@]}" \
  "$OUT"/wheels/*.whl
rm -rf "$OUT"/site/prefect/server/ui "$OUT"/site/prefect/server/ui-v2  # PREFECT_UI_ENABLED=false
mkdir -p "$OUT/site/bin" && cp "$(command -v git)" "$OUT/site/bin/git"  # if the host has none
tar -C "$OUT/site" -cf - . | xz -T0 -6 > "$OUT/site.tar.xz"
rm -rf "$OUT/wheels" "$OUT/site"
ls -la "$OUT/site.tar.xz"
