"""Logging setup for entry points; packages only ever call logging.getLogger(__name__)."""

from __future__ import annotations

import logging


def configure(level: str = "INFO", part: str = "") -> None:
    prefix = f"{part} " if part else ""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # Protocol libraries log every failed attempt; our sources log transitions once instead.
    for noisy in ("pymodbus", "asyncua"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # asyncua logs its pending publish request failing on every orderly disconnect.
    logging.getLogger("asyncua.client.ua_session").setLevel(logging.CRITICAL)
