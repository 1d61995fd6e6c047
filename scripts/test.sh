#!/usr/bin/env bash
# Set everything up and run the test suite. Tests that need ../shared/data (or CINC2020_SHARED) skip
# with the reason when it is missing; under CI=true its absence is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-test.txt
exec .venv/bin/python -m pytest -q "$@"
