"""Events the cogs send one another through ``bot.dispatch`` (discord.py's event bus), so
a cog that adds an example never imports the cog that posts it for review.

* ``bot.dispatch(EXAMPLE_ADDED, record)``: a new pending example (an ``ExampleRecord``);
  the review cog posts it in the review channel. Listen with
  ``@commands.Cog.listener("on_example_added")``.
* ``bot.dispatch(EXAMPLE_CHANGED, guild_id, example_id)``: an example's status or text
  changed outside its review post (``/example`` actions, an edit); the review cog edits
  the post. Listener: ``on_example_changed``.
"""

EXAMPLE_ADDED = "example_added"
EXAMPLE_CHANGED = "example_changed"
