"""Quality codes carried by every reading, on the wire and in storage."""

from __future__ import annotations

from enum import IntEnum


class Quality(IntEnum):
    """How far a reading can be trusted.

    GOOD and UNCERTAIN readings carry a finite value; the others carry none (the value is
    null on the wire and NULL in storage), so a dead sensor never looks like a number.
    """

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2
    BAD_COMM = 3
    OUT_OF_SERVICE = 4
    INSTRUMENT_FAULT = 5

    @property
    def has_value(self) -> bool:
        return self in (Quality.GOOD, Quality.UNCERTAIN)


VALUED_QUALITIES = frozenset(q.value for q in Quality if q.has_value)
