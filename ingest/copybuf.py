"""PostgreSQL binary COPY buffers built straight from numpy arrays (no per-row Python).

Row layout of ``readings (ts, tag_id, value, quality)``: a 16-bit field count, then per
field a 32-bit length and the big-endian value; a NULL is the length -1 with no data.
Rows with a value and rows without differ in size, so each kind is one structured array.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in Unix microseconds

_WITH_VALUE = np.dtype([
    ("nfields", ">i2"), ("ts_len", ">i4"), ("ts", ">i8"), ("tag_len", ">i4"), ("tag", ">i4"),
    ("val_len", ">i4"), ("val", ">f8"), ("q_len", ">i4"), ("q", ">i2"),
])  # fmt: skip
_WITHOUT_VALUE = np.dtype([
    ("nfields", ">i2"), ("ts_len", ">i4"), ("ts", ">i8"), ("tag_len", ">i4"), ("tag", ">i4"),
    ("val_len", ">i4"), ("q_len", ">i4"), ("q", ">i2"),
])  # fmt: skip


def readings_copy_buffer(
    ts_ms: npt.NDArray[np.int64],
    tag_id: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.int16],
) -> bytes:
    """The whole binary COPY stream; NaN values are written as NULL."""
    has_value = np.isfinite(values)
    parts = [HEADER]
    for dtype, mask in ((_WITH_VALUE, has_value), (_WITHOUT_VALUE, ~has_value)):
        n = int(mask.sum())
        if n == 0:
            continue
        rows = np.empty(n, dtype=dtype)
        rows["nfields"] = 4
        rows["ts_len"] = 8
        rows["ts"] = ts_ms[mask] * 1000 - PG_EPOCH_US
        rows["tag_len"] = 4
        rows["tag"] = tag_id[mask]
        if dtype is _WITH_VALUE:
            rows["val_len"] = 8
            rows["val"] = values[mask]
        else:
            rows["val_len"] = -1
        rows["q_len"] = 2
        rows["q"] = quality[mask]
        parts.append(rows.tobytes())
    parts.append(TRAILER)
    return b"".join(parts)
