"""Tie `hazardwatch up` and its children to the process a user or service manager signals.

Two Linux facilities, nothing polled in the children:

- ``PR_SET_PDEATHSIG``: a child started with :func:`die_with_parent` gets SIGTERM when `up` dies,
  even by SIGKILL, so no part outlives it.
- GNU make forwards SIGTERM to its recipe but not SIGINT or SIGHUP: it resets the signal to its
  default and waits for the recipe to end. :class:`ParentWatch` sees that reset in
  ``/proc/<make>/status`` (a termination signal it caught is no longer caught) and tells `up` to
  stop, so ``kill -INT <make's pid>`` stops the stack as Ctrl-C does.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
from pathlib import Path

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
_WATCHED = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)
_MAKES = ("make", "gmake")


def _prctl_pdeathsig(sig: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def die_with_parent() -> None:
    """``preexec_fn`` of a child: SIGTERM when the process that started it dies."""
    _prctl_pdeathsig(signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def caught_signals(pid: int) -> set[int] | None:
    """The signals a process has handlers for (``SigCgt``), or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return {n for n in range(1, 65) if mask >> (n - 1) & 1}
    return None


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


class ParentWatch:
    """Whether the make that started us is going down; inert under any other parent."""

    def __init__(self) -> None:
        self.parent = os.getppid()
        self._caught: set[int] = set()
        if process_name(self.parent) in _MAKES:
            self._caught = (caught_signals(self.parent) or set()) & set(_WATCHED)
            _prctl_pdeathsig(signal.SIGTERM)  # make killed outright: we get SIGTERM
            logger.debug("watching make (pid %s) for %s", self.parent, sorted(self._caught))

    def stopping(self) -> bool:
        """True once the parent make handles a termination signal (or is gone)."""
        if not self._caught:
            return False
        now = caught_signals(self.parent)
        return now is None or os.getppid() != self.parent or bool(self._caught - now)
