#!/usr/bin/env bash
# Installs everything and runs the whole test suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,trainer,bench,fast-chat
if [ -d ../shared/tiktoken ]; then
    export TIKTOKEN_CACHE_DIR
    TIKTOKEN_CACHE_DIR="$(cd ../shared/tiktoken && pwd)"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
# Two workers by default (pytest-xdist; most tests wait on sockets and child processes, so
# two cores run the suite in about half the time); TUNECORD_TEST_WORKERS=0 runs it serially.
exec .venv/bin/python -m pytest -n "${TUNECORD_TEST_WORKERS:-2}" "$@"
