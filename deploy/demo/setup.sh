#!/usr/bin/env bash
# `make demo`'s setup, and nothing more: the Debian packages the demo uses (installed only
# when missing) and the venv .venv-demo holding ser-edge (editable) with its runtime
# dependencies alone. No TensorFlow, no training package, no test tools, no Home
# Assistant or Node-RED: that is deploy/dev/setup.sh's job (`make test`). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."

# mosquitto: the demo's throwaway broker; libsndfile1: soundfile's library where its wheel
# does not bundle one (32-bit Pi OS); python3-venv: Debian's python3 makes no venv without it.
deploy/dev/apt-install-missing mosquitto libsndfile1 python3-venv

VENV=${DEMO_VENV:-.venv-demo}
PYTHON=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
echo "setup: installing ser-edge and its runtime dependencies into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ./edge 2>&1 | grep -v "is ignored" || true
"$VENV/bin/python" -c "import ser_edge.daemon" # fail here, not in the demo, if the install broke
