#!/usr/bin/env bash
# Create .venv (once) and install the pinned requirements into it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --requirement "${1:-requirements.txt}"
