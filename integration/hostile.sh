#!/usr/bin/env bash
# Hostile-client suite against a built broker: see integration/hostile.py for what it checks.
# Usage: integration/hostile.sh path/to/tiercel [--full] [--only 1,3] [--keep]
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$(dirname "$0")/hostile.py" "$@"
