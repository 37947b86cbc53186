"""tunecord trainer: a self-hosted, OpenAI-compatible fine-tuning and chat server."""
