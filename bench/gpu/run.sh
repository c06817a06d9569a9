#!/usr/bin/env bash
# On a GPU host with Python 3.12 and PyTorch but not this project's stack: unpack what
# pack.sh made (.gpu/site.tar.xz), check that the stack imports, then run the training
# benchmark on the GPU: plain `yolo train` and the training flow (train, evaluate with its
# ONNX export and parity check, register, gate), in the order plain, flow, flow, plain.
#   bash bench/gpu/run.sh [size] [device]     # default: default 0
# The log goes to $OUT (a device run's folder) when set, else /tmp.
set -uo pipefail
cd "$(dirname "$0")/../.."
SIZE=${1:-default}
DEVICE=${2:-0}
LOGS=${OUT:-/tmp}
SITE=${SKINTWIN_GPU_SITE:-/tmp/skintwin-site}
if [ ! -d "$SITE/prefect" ]; then
  mkdir -p "$SITE"
  tar -xJf .gpu/site.tar.xz -C "$SITE" 2>/dev/null \
    || python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" \
      .gpu/site.tar.xz "$SITE" || exit 2
fi
command -v git >/dev/null || export PATH="$PATH:$SITE/bin"  # the packed git, if none here
export PYTHONPATH="$SITE:$PWD" PREFECT_HOME=/tmp/skintwin-prefect \
  YOLO_CONFIG_DIR=/tmp/skintwin-yolo YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false \
  MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 DVC_NO_ANALYTICS=1 \
  PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_UI_ENABLED=false PYTHONUNBUFFERED=1
unset PYTHONDONTWRITEBYTECODE  # the stages' processes reuse the bytecode the first one writes
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'PY' || exit 3
import platform, torch
print(f"Python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.cuda.is_available()}")
import dvc.cli, flows.training, mlflow, prefect, ultralytics  # noqa: E401 — the stack imports
import skintwin.steps.evaluate, skintwin.steps.train  # noqa: E401
print(f"prefect {prefect.__version__}, mlflow {mlflow.__version__}, ultralytics {ultralytics.__version__}")
PY
python3 -m dvc version -q >/dev/null || exit 4
python3 -m bench --size "$SIZE" --only training --device "$DEVICE" 2>&1 | tee "$LOGS/gpu-bench.log"
status=${PIPESTATUS[0]}
cp bench/results/*.json "$LOGS/" 2>/dev/null
exit "$status"
