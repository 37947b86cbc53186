"""The Discord side of the bot: the client, its command tree, checks, and UI base classes.

Cogs (in ``cogs/``) build on these; services (``bot/services/``) never import them.
"""
