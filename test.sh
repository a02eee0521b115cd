#!/usr/bin/env bash
# Run the test suite (and lint) in the project's own venv.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
