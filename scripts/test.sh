#!/usr/bin/env bash
# Installs everything and runs the whole test suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,trainer,bench
if [ -d ../shared/tiktoken ]; then
    export TIKTOKEN_CACHE_DIR
    TIKTOKEN_CACHE_DIR="$(cd ../shared/tiktoken && pwd)"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
