#!/usr/bin/env bash
# Create (or update) the project's virtual environment deterministically.
#
#   bash scripts/setup_venv.sh [VENV_DIR]
#
# Order matters:
#   1. torch first: TORCH_SPEC (default torch==2.13.0, the CPU build on our CI machines) unless
#      the environment already imports torch (a GPU user who installed a CUDA build first).
#   2. the project with its extras; OpenCV comes as opencv-contrib-python-headless only
#      (TV-L1 optical flow lives in contrib; headless needs no X libraries).
#   3. face-alignment with --no-deps: it declares opencv-python, which installs a second,
#      clashing `cv2`. Its remaining needs are in pyproject.toml.
#   4. a guard that fails if the plain opencv-python build slipped in anyway.
set -euo pipefail

VENV="${1:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
FACE_ALIGNMENT_SPEC="${FACE_ALIGNMENT_SPEC:-face-alignment==1.5.0}"
EXTRAS="${EXTRAS:-dev,dlib,docs,bench,tensorboard}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

if "$PY" -c "import torch" 2>/dev/null; then
    echo "[setup] torch already present: $("$PY" -c 'import torch; print(torch.__version__)')"
else
    echo "[setup] installing $TORCH_SPEC"
    "${PIP[@]}" "$TORCH_SPEC"
fi

echo "[setup] installing the project (extras: $EXTRAS)"
"${PIP[@]}" -e ".[${EXTRAS}]"

echo "[setup] installing $FACE_ALIGNMENT_SPEC without its opencv-python requirement"
"${PIP[@]}" --no-deps "$FACE_ALIGNMENT_SPEC"

for dist in opencv-python opencv-python-headless opencv-contrib-python; do
    if "$PY" -m pip show "$dist" >/dev/null 2>&1; then
        echo "[setup] ERROR: $dist is installed next to opencv-contrib-python-headless;" \
             "both own 'cv2'. Remove it with '$PY -m pip uninstall $dist'," \
             "then run '$PY -m pip install --force-reinstall --no-deps" \
             "opencv-contrib-python-headless' and rerun this script." >&2
        exit 1
    fi
done
"$PY" -c "import cv2, torch; assert hasattr(cv2, 'optflow'), 'cv2 has no contrib modules'; \
print('[setup] ready: torch', torch.__version__, '| cv2', cv2.__version__, '(contrib)')"
