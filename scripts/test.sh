#!/usr/bin/env bash
# Set up a fresh environment and run the test suite (the README's test command).
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
# napari renders only with an X server: the GUI tests run under Xvfb (pytest-xvfb), and Qt
# needs the X libraries beside it (a machine with Xvfb alone aborts creating the QApplication)
PKGS="xvfb libgl1 libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
      libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0
      libxcb-cursor0 libdbus-1-3 libfontconfig1"
if command -v dpkg >/dev/null; then
    missing=""
    for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    if [ -n "$missing" ]; then
        if [ "$(id -u)" = 0 ]; then
            # shellcheck disable=SC2086
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                $missing >/dev/null
        else
            echo "missing Debian packages for the GUI tests:$missing (sudo apt-get install" \
                 "$missing)" >&2
            exit 1
        fi
    fi
elif ! command -v Xvfb >/dev/null; then
    echo "Xvfb is missing: install your system's Xvfb and Qt's X libraries" >&2
    exit 1
fi
python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
# the CPU build of torch first: an unpinned torch would pull several GB of CUDA packages
pip install -q torch==2.13.0
pip install -q -e ".[test,napari]"
python -m pytest "$@"
