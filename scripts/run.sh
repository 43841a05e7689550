#!/usr/bin/env bash
# The main job on the shipped defaults: the "label 5 images then refine" loop
# on the bundled sample with the shipped hybrid-pretrained model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh testing
exec "${HYBRIDSEG_VENV:-.venv}/bin/hybridseg" simulate "$@"
