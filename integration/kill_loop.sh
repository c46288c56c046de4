#!/usr/bin/env bash
# kill -9 at scale against a built broker: see integration/kill_loop.py.
# Usage: integration/kill_loop.sh path/to/tiercel [cycles] [--rate N] [--keep]
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$(dirname "$0")/kill_loop.py" "$@"
