#!/usr/bin/env bash
# The main job on the shipped defaults: napari with the annotation dock open on
# the bundled sample and the shipped hybrid-pretrained model. Without a display
# it runs the same loop headless (hybridseg simulate) and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh testing
bin="${HYBRIDSEG_VENV:-.venv}/bin"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec "$bin/hybridseg" gui "$@"
fi
echo "No display found: running the headless version of the workflow (hybridseg simulate)."
exec "$bin/hybridseg" simulate "$@"
