"""One bad node stalls no other; polled nodes, by choice or because the server refused a
monitored item, read through the same data-change filter. Against a real asyncua server."""

from __future__ import annotations

import logging

import pytest
from asyncua.ua.status_codes import StatusCodes

from gateway_agent.sources.opcua import OpcUaSource
from hazardwatch.quality import Quality
from tests.opcua_support import SOURCE_TIME, UaServer, node, opcua_plant, running, serving, until, until_up
from tests.support import free_port

POINTS = {
    "A": {"node": node("T.A"), "sampling_interval_ms": 0},
    "B": {"node": node("T.B"), "sampling_interval_ms": 0},
    "LATER": {"node": node("T.LATER"), "sampling_interval_ms": 100},  # not on the server yet
    "POLLED": {"node": node("T.POLL"), "mode": "poll", "sampling_interval_ms": 100, "deadband": 0.5},
}


async def test_a_missing_node_is_bad_and_polled_while_the_others_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway_agent")
    port = free_port()
    endpoint = f"opc.tcp://127.0.0.1:{port}/test/"
    device, tags = opcua_plant({"endpoint": endpoint, "publishing_interval_ms": 50, "timeout_s": 2}, POINTS)
    source = OpcUaSource(device, tags)
    async with serving(UaServer(port, {"T.A": 1.0, "T.B": 2.0, "T.POLL": 3.0})) as server:
        await server.write("T.POLL", 3.0, when=SOURCE_TIME)
        async with running(source) as emitted:
            await until_up(source, emitted, list(POINTS))
            assert (emitted.values("LATER"), emitted.quality("LATER")) == ([None], Quality.BAD)
            await server.write("T.A", 1.5)
            await server.write("T.B", 2.5)
            await until(
                lambda: emitted.values("A")[-1] == 1.5 and emitted.values("B")[-1] == 2.5, "the others"
            )
            assert emitted.latest("POLLED") == (int(SOURCE_TIME.timestamp() * 1000), 3.0, Quality.GOOD)

            # polled: Read requests, no monitored item; a constant value and a move under the
            # deadband report nothing, a move beyond it reports
            reads = server.reads[node("T.POLL")]
            await until(lambda: server.reads[node("T.POLL")] >= reads + 3, "three more reads of T.POLL")
            await server.write("T.POLL", 3.4)
            reads = server.reads[node("T.POLL")]
            await until(lambda: server.reads[node("T.POLL")] >= reads + 3, "reads of the small move")
            assert emitted.values("POLLED") == [3.0]
            stamp = await server.write("T.POLL", 4.5)
            await until(lambda: emitted.values("POLLED")[-1] == 4.5, "the move beyond the deadband")
            assert emitted.latest("POLLED") == (stamp, 4.5, Quality.GOOD)

            # the refused node is polled: once the server has it, its values flow
            await server.add("T.LATER", 7.0)
            await until(lambda: emitted.values("LATER")[-1] == 7.0, "the node that appeared")
            await server.write("T.LATER", 8.0, StatusCodes.UncertainLastUsableValue)
            await until(lambda: emitted.quality("LATER") == Quality.UNCERTAIN, "its next change")
            assert emitted.values("LATER") == [None, 7.0, 8.0]

            assert set(server.monitored) == {node("T.A"), node("T.B")}
            assert server.reads[node("T.LATER")] >= 2
    refusals = [r.getMessage() for r in caplog.records if "LATER" in r.getMessage()]
    assert len(refusals) == 1, refusals
    assert "BadNodeIdUnknown" in refusals[0]
    assert "polling it every 0.1 s" in refusals[0]
