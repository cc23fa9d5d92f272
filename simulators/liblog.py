"""Keep the protocol libraries' loggers to warnings: they log every connection at INFO."""

from __future__ import annotations

import logging


def quiet_library_logger(name: str) -> None:
    """Set a library's logger to WARNING, unless the entry point already chose its level."""
    library = logging.getLogger(name)
    if library.level == logging.NOTSET:
        library.setLevel(logging.WARNING)
