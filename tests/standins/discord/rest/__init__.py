"""REST v10 handlers, one module per resource family.

Each module exposes ``ROUTES``: ``(method, path template, handler)``.  The
templates use Discord's placeholders (``{channel_id}``) and are mounted under
``/api/v10`` by :mod:`..server`.  Anything not listed answers
``404 {"message": "404: Not Found", "code": 0}`` so gaps fail loudly.
"""

from __future__ import annotations

from . import app, channels, guilds, interactions

ROUTES = [*app.ROUTES, *channels.ROUTES, *guilds.ROUTES, *interactions.ROUTES]
