"""``python -m bot.backend.guard PARENT_PID PROGRAM [ARG...]``: run a program that ends
with the bot.

Linux sends the program SIGTERM when the process that started it dies, even by SIGKILL
(``PR_SET_PDEATHSIG``, kept across ``exec``), so a bot that crashes or is killed never
leaves a trainer behind holding the data folder. The guard sets that, checks the bot did
not die in the meantime, and replaces itself with the program (same process id, nothing
left running in between). Elsewhere it only replaces itself.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1
EXIT_ORPHANED = 3
"""The exit status when the bot was already gone before the program could start."""


def _end_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: python -m bot.backend.guard PARENT_PID PROGRAM [ARG...]", file=sys.stderr)
        return 2
    parent, program = int(argv[0]), list(argv[1:])
    _end_with_parent()
    if os.getppid() != parent:  # the bot died before the guard was in place
        return EXIT_ORPHANED
    os.execv(program[0], program)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
