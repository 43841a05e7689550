#!/usr/bin/env bash
# Install what napari-hybridseg needs on a fresh Debian machine: system
# libraries for Qt and a virtual X display, a virtualenv, and the package.
# Idempotent and quick when everything is already there.
# Usage: scripts/setup.sh [EXTRAS]   (EXTRAS: napari | testing; default testing)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-testing}"
venv="${HYBRIDSEG_VENV:-.venv}"

apt_packages=(xvfb xauth libegl1 libdbus-1-3 libfontconfig1 libglib2.0-0 libxkbcommon0
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
  libxcb-render0 libxcb-render-util0 libxcb-shape0 libxcb-xkb1)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing system packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating virtualenv $venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
stamp="$venv/.hybridseg-$extras"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! "$venv/bin/python" -c "import napari_hybridseg" 2>/dev/null; then
  echo "installing napari-hybridseg[$extras] into $venv (first time: a few minutes)"
  "$venv/bin/python" -m pip install -q -e ".[$extras]"
  echo "$want" > "$stamp"
fi
