"""Wire format v1 round trips and structural validation."""

from __future__ import annotations

import json

import msgpack
import pytest

from hazardwatch import wire
from hazardwatch.errors import WireError
from hazardwatch.quality import Quality


def _batch() -> wire.ReadingBatch:
    batch = wire.ReadingBatch(gateway="gw01", seq=7, sent_ms=1_700_000_000_000)
    batch.append("LT101", 1_700_000_000_000, 42.5, Quality.GOOD)
    batch.append("PT101", 1_700_000_000_001, 3.0, Quality.BAD_COMM)
    return batch


@pytest.mark.parametrize("encode", [wire.encode, wire.encode_json])
def test_round_trip(encode: object) -> None:
    assert callable(encode)
    decoded = wire.decode(encode(_batch()))
    assert decoded.tags == ["LT101", "PT101"]
    assert decoded.values == [42.5, None]  # a BAD_COMM reading carries no value
    assert decoded.quality == [0, 3]
    assert decoded.seq == 7


@pytest.mark.parametrize("encode", [msgpack.packb, lambda doc: json.dumps(doc).encode()])
def test_a_number_sent_with_a_quality_that_carries_no_value_is_no_value(encode: object) -> None:
    """Another sender's BAD_COMM reading with 99.0 in it must not reach storage, rollups or rules as 99."""
    assert callable(encode)
    qualities = [int(q) for q in Quality]
    doc = {"v": 1, "gw": "g", "seq": 1, "sent": 1, "tags": ["a"] * len(qualities),
           "ts": list(range(len(qualities))), "val": [99.0] * len(qualities), "q": qualities}  # fmt: skip
    decoded = wire.decode(encode(doc))
    assert decoded.values == [99.0 if Quality(q).has_value else None for q in qualities]
    assert decoded.values.count(None) == 4


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty payload"),
        (b"\xc1", "malformed msgpack"),
        (b"{nope", "malformed JSON"),
        (msgpack.packb([1, 2]), "not a map"),
        (msgpack.packb({"v": 2}), "unknown wire version 2"),
        (
            msgpack.packb(
                {"v": 1, "gw": "g", "seq": 1, "sent": 1, "tags": ["a"], "ts": [], "val": [], "q": []}
            ),
            "has 0 items, expected 1",
        ),
        (
            msgpack.packb(
                {"v": 1, "gw": "g", "seq": 1, "sent": 1, "tags": ["a"], "ts": [1], "val": ["x"], "q": [0]}
            ),
            "numbers or null",
        ),
        (
            msgpack.packb(
                {"v": 1, "gw": "g", "seq": 1, "sent": 1, "tags": ["a"], "ts": [1], "val": [1], "q": [77]}
            ),
            "known quality codes",
        ),
        (
            msgpack.packb(
                {"v": 1, "gw": "g", "seq": -1, "sent": 1, "tags": [], "ts": [], "val": [], "q": []}
            ),
            "'seq' must be a non-negative 64-bit integer",
        ),
        (json.dumps({"v": 1, "gw": "", "seq": 1}).encode(), "'gw' must be a non-empty string"),
    ],
)
def test_malformed_payloads_have_reasons(payload: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        wire.decode(payload)


def test_topics() -> None:
    topic = wire.readings_topic("E1", "gw01")
    assert wire.parse_topic(topic) == wire.TopicAddress("E1", "gw01", "readings")
    with pytest.raises(WireError):
        wire.parse_topic("hw/v2/E1/gw01/readings")
    with pytest.raises(WireError):
        wire.parse_topic("hw/v1/E1//readings")
