"""The dataset core: examples, validation, tokens, tiers, cost, prices and the
``tunecord check`` CLI.

It imports neither discord nor storage, so the bot, the storage layer and the trainer can
all build on it.
"""
