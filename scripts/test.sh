#!/usr/bin/env bash
# Install everything (system packages, virtualenv, package) and run the tests
# under a virtual X display (pytest-xvfb starts Xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh testing
exec "${HYBRIDSEG_VENV:-.venv}/bin/python" -m pytest "$@"
