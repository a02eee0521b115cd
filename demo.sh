#!/usr/bin/env bash
# Run the demo: local demo sources → crawl → classify → queue → digest → inbox on http://127.0.0.1:8080/
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/monitor demo "$@"
