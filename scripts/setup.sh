#!/usr/bin/env bash
# One-step setup, safe to run again (it reuses what is there). Linux and macOS; on Windows, the README's pip commands.
#   bash scripts/setup.sh          .venv + requirements.txt (the app) + the dataset
#   bash scripts/setup.sh --test   the same, plus requirements-dev.txt (tests, lint, Ray) and Chromium
# Needs bash and python3 (3.11+). Nothing else is assumed: files are hashed in Python (macOS has no
# sha256sum), and apt-get is used only where it exists and we may (root or sudo): Debian's
# dataset-fashion-mnist and chromium packages. Otherwise the dataset is downloaded, checksummed, into
# $FMNIST_DATA_DIR or ./data ($FMNIST_DATA_MIRROR: another mirror).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
apt_updated=0
apt_install() {  # apt_install PKG... : install Debian packages when we may (root or sudo)
  command -v apt-get >/dev/null || return 1
  [ "$(id -u)" = 0 ] || [ -n "$SUDO" ] || return 1
  if [ $apt_updated = 0 ]; then $SUDO apt-get update -qq || true; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
sha256_of() {  # sha256_of FILE... : one hash over the files, in Python (no sha256sum on macOS)
  "$PYTHON" -c 'import hashlib, sys; h = hashlib.sha256(); [h.update(open(p, "rb").read()) for p in sys.argv[1:]]; print(h.hexdigest())' "$@"
}
install_reqs() {  # install_reqs STAMP FILE [FILES NESTED IN IT...] : pip install -r FILE unless unchanged
  local stamp=$1 file=$2 want
  want=$(sha256_of "${@:2}")
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== installing $file (the first time takes a few minutes)"
    .venv/bin/python -m pip install -q -r "$file"
    echo "$want" > "$stamp"
  else
    echo "== $file already installed"
  fi
}

# 1. Python virtual environment with the pinned requirements (skipped when unchanged).
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "== installing python3-venv"; apt_install python3-venv || { echo "error: $PYTHON has no venv module"; exit 1; }
fi
[ -x .venv/bin/python ] || { echo "== creating .venv"; "$PYTHON" -m venv .venv; .venv/bin/python -m pip install -q --upgrade pip; }
install_reqs .venv/.requirements.sha256 requirements.txt
if [ $want_test = 1 ]; then install_reqs .venv/.requirements-dev.sha256 requirements-dev.txt requirements-ray.txt; fi

# 2. The dataset: where $FMNIST_DATA_DIR says, else Debian's package, else a checksummed download into ./data.
if .venv/bin/python -c 'import os; from fmnist.data import find_data_dir; print(find_data_dir(os.environ.get("FMNIST_DATA_DIR")))' 2>/dev/null; then
  echo "== Fashion-MNIST found"
else
  echo "== getting Fashion-MNIST"
  if [ -n "${FMNIST_DATA_DIR:-}" ] || ! apt_install dataset-fashion-mnist; then
    .venv/bin/python -m fmnist download
  fi
  .venv/bin/python -m fmnist data
fi

# 3. A real browser for the browser tests.
if [ $want_test = 1 ] && ! [ -x /usr/bin/chromium ]; then
  echo "== installing chromium for the browser tests"
  apt_install chromium chromium-driver || echo "warning: could not install chromium; browser tests will be skipped"
fi
echo "== setup done"
