#!/usr/bin/env bash
# Prepare a machine for development and tests: the Debian packages the tests use
# (installed only when missing) and the project venv .venv holding ser-edge and
# ser-training editable, with the test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."

deploy/dev/apt-install-missing libsndfile1 mosquitto openssl nodejs libsystemd-dev pkg-config gcc python3-dev \
  python3-apt python3-venv gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm fluidsynth fluid-soundfont-gm
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
echo "setup: installing ser-edge, ser-training and the test tools into .venv"
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -e "edge[bench,vad,systemd]" -e training -r deploy/dev/requirements-dev.txt \
  2>&1 | grep -v "is ignored" || true
# tf-keras (for the LSTM's int8 export) would pull the full tensorflow package as a dependency.
.venv/bin/python -m pip install -q --no-deps tf-keras==2.21.0 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import ser_edge, ser_training" # fail here, not in the tests, if the install broke

# The real subscribers the tests run the examples in (tests/test_subscribers.py), kept
# outside the checkout so every clone and CI run on this machine reuses the download.
TOOLS=${SER_TOOLS:-$HOME/.cache/ser-edge}
NODE_RED_VERSION=4.1.15 # the 4.x line: Node-RED 5 needs Node >= 22.9, Debian 12 has Node 18/20
command -v npm >/dev/null || { echo "setup: installing npm"; $sudo apt-get install -y -qq --no-install-recommends npm; }
if ! grep -qs "\"version\": \"$NODE_RED_VERSION\"" "$TOOLS/node-red/node_modules/node-red/package.json"; then
  echo "setup: installing Node-RED $NODE_RED_VERSION into $TOOLS/node-red"
  mkdir -p "$TOOLS/node-red"
  npm install --prefix "$TOOLS/node-red" --no-audit --no-fund --loglevel=error "node-red@$NODE_RED_VERSION"
fi
# Home Assistant's device discovery needs 2024.12 or newer, which needs Python 3.13
# (deploy/dev/python313 finds one or gets one: Debian's packages where the release has them,
# else a standalone CPython through uv; it stops setup with what is missing if it cannot);
# 2025.4 with the MQTT integration's and the frontend's requirements, so it starts without
# installing anything itself.
HA_VERSION=2025.4.4
HA_REQUIREMENTS=("homeassistant==$HA_VERSION" paho-mqtt==2.1.0 home-assistant-frontend==20250411.0)
if ! "$TOOLS/ha-venv/bin/python" -c "import homeassistant.const as c, paho.mqtt, hass_frontend; assert c.__version__ == '$HA_VERSION'" 2>/dev/null; then
  PY313=$(SER_TOOLS="$TOOLS" deploy/dev/python313)
  echo "setup: installing Home Assistant $HA_VERSION into $TOOLS/ha-venv (with $PY313)"
  rm -rf "$TOOLS/ha-venv"
  "$PY313" -m venv "$TOOLS/ha-venv"
  "$TOOLS/ha-venv/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  "$TOOLS/ha-venv/bin/python" -m pip install -q "${HA_REQUIREMENTS[@]}" 2>&1 | grep -v "is ignored" || true
  "$TOOLS/ha-venv/bin/python" -c "import homeassistant, hass_frontend, paho.mqtt" # fail here if the install broke
fi
