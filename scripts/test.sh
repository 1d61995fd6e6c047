#!/usr/bin/env bash
# Set everything up and run the test suite (needs ../shared/data, or CINC2020_SHARED).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-test.txt
exec .venv/bin/python -m pytest -q "$@"
