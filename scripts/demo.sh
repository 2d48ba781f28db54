#!/usr/bin/env bash
# Set up a fresh environment and run the main job on the bundled real data (the README's demo
# command): train on 4 real noisy confocal frames, denoise with the camera noise model, write a
# TIFF and a PNG comparison, print PSNR against the 50-frame average. About 5 minutes on 2 CPU
# cores. Usage: bash scripts/demo.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
pip install -q torch==2.13.0
pip install -q -e .
scoredenoise demo -o "${1:-scoredenoise-demo}"
