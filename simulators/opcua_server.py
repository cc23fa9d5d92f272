"""OPC-UA servers for the plant's ``opcua`` devices, one asyncua Server per distinct endpoint.

The simulator's namespace is registered first, so it has index 2 and the node ids of devices.yaml
(``ns=2;s=V301.LT``) resolve as written. Each tag is a Double variable with that node id under an
object per enterprise and equipment; its description carries the engineering unit. Every refresh
writes the value with a source timestamp; a failed transmitter's value has status BadSensorFailure,
a frozen one keeps its last value with status Good.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC

from asyncua import ua
from asyncua.common.node import Node
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes

from hazardwatch.ledger import OpcUaDevice, Plant, Tag
from simulators.liblog import quiet_library_logger
from simulators.process import PlantModel
from simulators.values import FaultMode, TagKey

logger = logging.getLogger(__name__)

NAMESPACE_URI = "urn:hazardwatch:simulator"
NAMESPACE_INDEX = 2


@dataclass(frozen=True, slots=True)
class ServedTag:
    key: TagKey
    tag: Tag
    equipment: str
    node_id: ua.NodeId


def opcua_endpoints(plant: Plant) -> dict[str, list[ServedTag]]:
    """The tags each distinct endpoint serves; ValueError for a node outside namespace 2 or twice."""
    endpoints: dict[str, list[ServedTag]] = {}
    for enterprise in plant.enterprises:
        devices = {d.id: d for g in enterprise.gateways for d in g.devices if isinstance(d, OpcUaDevice)}
        for device in devices.values():
            endpoints.setdefault(device.endpoint, [])  # an endpoint with no tags is still served
        for _, equipment, tag in enterprise.iter_tags():
            if tag.opcua is None:
                continue
            node_id = ua.NodeId.from_string(tag.opcua.node)
            if node_id.NamespaceIndex != NAMESPACE_INDEX:
                raise ValueError(
                    f"tag {enterprise.code}/{tag.code}: node {tag.opcua.node} is not in the simulator's "
                    f"namespace (ns={NAMESPACE_INDEX})"
                )
            served = ServedTag(TagKey(enterprise.code, tag.code), tag, equipment.code, node_id)
            endpoints[devices[tag.opcua.device].endpoint].append(served)
    for endpoint, tags in endpoints.items():
        seen: dict[ua.NodeId, TagKey] = {}
        for served in tags:
            if served.node_id in seen:
                raise ValueError(
                    f"{endpoint}: node {served.tag.opcua and served.tag.opcua.node} is served for both "
                    f"{seen[served.node_id]} and {served.key}"
                )
            seen[served.node_id] = served.key
    return endpoints


class EndpointServer:
    """One asyncua server and its variables."""

    def __init__(self, endpoint: str, tags: list[ServedTag]) -> None:
        self.endpoint = endpoint
        self.tags = tags
        self.server = Server()
        self._started = False

    async def start(self) -> None:
        server = self.server
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("HazardWatch plant simulator")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        server.set_identity_tokens([ua.AnonymousIdentityToken])  # a simulator: anonymous, no security
        index = await server.register_namespace(NAMESPACE_URI)
        if index != NAMESPACE_INDEX:  # pragma: no cover - a fresh server has exactly two namespaces
            raise RuntimeError(f"the simulator's namespace got index {index}, not {NAMESPACE_INDEX}")
        await self._build(index)
        await server.start()
        self._started = True

    async def _build(self, index: int) -> None:
        folders: dict[str, Node] = {}
        objects = self.server.nodes.objects
        for served in self.tags:
            enterprise = served.key.enterprise
            if enterprise not in folders:
                folders[enterprise] = await objects.add_folder(index, enterprise)
            parent_key = f"{enterprise}/{served.equipment}"
            if parent_key not in folders:
                folders[parent_key] = await folders[enterprise].add_object(index, served.equipment)
            variable = await folders[parent_key].add_variable(
                served.node_id,
                ua.QualifiedName(served.tag.code, index),
                ua.Variant(0.0, ua.VariantType.Double),
            )
            description = f"{served.tag.name} [{served.tag.unit}]"
            await variable.write_attribute(
                AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(description)))
            )

    async def refresh(self, model: PlantModel) -> None:
        now = ua.DateTime.now(UTC)
        for served in self.tags:
            sim = model.reading(served.key.enterprise, served.key.tag)
            if sim.mode is FaultMode.FAILED or not math.isfinite(sim.value):
                status = ua.StatusCode(ua.UInt32(StatusCodes.BadSensorFailure))
                value = ua.Variant(math.nan, ua.VariantType.Double)
            else:
                status = ua.StatusCode(ua.UInt32(StatusCodes.Good))
                value = ua.Variant(sim.value, ua.VariantType.Double)
            data = ua.DataValue(value, StatusCode=status, SourceTimestamp=now, ServerTimestamp=now)
            await self.server.write_attribute_value(served.node_id, data)

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self.server.stop()


class OpcUaSimulator:
    """Every OPC-UA endpoint of the plant."""

    def __init__(self, plant: Plant) -> None:
        quiet_library_logger("asyncua")  # it logs every session and subscription at INFO
        self.servers = [EndpointServer(e, tags) for e, tags in opcua_endpoints(plant).items()]

    @property
    def endpoints(self) -> list[str]:
        return [s.endpoint for s in self.servers]

    async def start(self) -> None:
        for server in self.servers:  # one after another: asyncua fills its address space in a thread
            await server.start()
            logger.info("opc-ua simulator listening at %s, %d variables", server.endpoint, len(server.tags))

    async def refresh(self, model: PlantModel) -> None:
        for server in self.servers:
            await server.refresh(model)

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()
