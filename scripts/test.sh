#!/usr/bin/env bash
# Set up a fresh environment and run the test suite (the README's test command).
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
# the CPU build of torch first: an unpinned torch would pull several GB of CUDA packages
pip install -q torch==2.13.0
pip install -q -e ".[test]"
python -m pytest "$@"
