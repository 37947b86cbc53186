"""The backend processes the bot runs itself: the bundled trainer as a supervised child.

* :mod:`.trainer_child`: :class:`~bot.backend.trainer_child.TrainerChild` starts
  ``python -m trainer`` on loopback with a generated key, waits until it answers,
  restarts it when it dies and stops it on exit;
* :mod:`.running`: :func:`~bot.backend.running.running_backend`, what the composition root
  enters: the child when ``TUNECORD_BACKEND=trainer`` and ``TUNECORD_START_TRAINER`` are on;
* :mod:`.child_log`: the child's output, forwarded to the bot's log with a prefix;
* :mod:`.guard`: the tiny launcher that ties the child's life to the bot's.

Nothing is imported here: ``python -m bot.backend.guard`` must start fast.
"""
