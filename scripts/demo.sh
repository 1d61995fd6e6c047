#!/usr/bin/env bash
# Set everything up, run the shipped model on the sample records and score its outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
rm -rf outputs/samples
.venv/bin/python driver.py model samples outputs/samples
echo "Scores of the shipped model on the $(ls samples/*.hea | wc -l) sample records:"
.venv/bin/python evaluate_12ECG_score.py samples outputs/samples
