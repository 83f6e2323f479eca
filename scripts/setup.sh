#!/usr/bin/env bash
# One-step setup on a fresh Debian/Ubuntu machine; safe to run again (it reuses what is there).
#   bash scripts/setup.sh          venv + requirements + dataset
#   bash scripts/setup.sh --test   the same, plus Chromium for the real-browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
want_browser=0
[ "${1:-}" = "--test" ] && want_browser=1

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
apt_updated=0
apt_install() {  # apt_install PKG... : install Debian packages when we may (root or sudo)
  command -v apt-get >/dev/null || return 1
  [ "$(id -u)" = 0 ] || [ -n "$SUDO" ] || return 1
  if [ $apt_updated = 0 ]; then $SUDO apt-get update -qq || true; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# 1. Python virtual environment with the pinned requirements (skipped when unchanged).
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "== installing python3-venv"; apt_install python3-venv || { echo "error: python3 venv module missing"; exit 1; }
fi
[ -x .venv/bin/python ] || { echo "== creating .venv"; "$PYTHON" -m venv .venv; }
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing requirements (torch from local disk where available; first time takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
else
  echo "== requirements already installed"
fi

# 2. The dataset: Debian's package, else a checksummed download into ./data.
if .venv/bin/python -c 'from fmnist.data import find_data_dir; find_data_dir()' 2>/dev/null; then
  echo "== Fashion-MNIST found: $(.venv/bin/python -c 'from fmnist.data import find_data_dir; print(find_data_dir())')"
else
  echo "== getting Fashion-MNIST"
  apt_install dataset-fashion-mnist || .venv/bin/python -m fmnist download
  .venv/bin/python -m fmnist data
fi

# 3. A real browser for the browser tests.
if [ $want_browser = 1 ] && ! [ -x /usr/bin/chromium ]; then
  echo "== installing chromium for the browser tests"
  apt_install chromium chromium-driver || echo "warning: could not install chromium; browser tests will be skipped"
fi
echo "== setup done"
