#!/usr/bin/env bash
# Installs everything and runs the bot with its default backend (the local trainer).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh trainer,fast-chat
exec .venv/bin/python -m bot "$@"
