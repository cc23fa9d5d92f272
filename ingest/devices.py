"""Devices that do not answer: one DEVICE_COMM alarm on their gateway instead of a FAULT per tag.

A gateway reports every tag of a device it cannot reach as BAD_COMM (each poll for Modbus, once
at the loss for OPC-UA). A device is **down** while the latest reading of every one of its tags in
service is BAD_COMM; one readable tag, or a reading with another quality, means it answers. While
any device of a gateway is down, the gateway has one active DEVICE_COMM alarm (离线, value: the
number of devices down, detail: which), and those tags' BAD_COMM readings are *covered*: their
FAULT neither rises nor clears (ISA-18.2 suppression of consequential alarms; a PLC that drops
off the network is one alarm, not a flood). A tag that alone reads BAD_COMM, its device
answering for the others (a rejected register block, a node the server cannot read), still
raises its FAULT. A second device going down while the alarm is active, or one of several coming
back, is no new alarm: the active alarm's value and detail follow (no state change, nothing to
journal); its clear names the devices that were down last.

The state is rebuilt from the database (the latest readings, the open alarms) whenever the tag
index loads, and copied and restored with the rule engine's state around each step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg

from alarms.store import refresh_active
from hazardwatch.quality import Quality
from ingest.tagindex import TagIndex
from rules.types import Condition, Subject, Transition

Conn = psycopg.Connection[tuple[object, ...]]
I64 = npt.NDArray[np.int64]
Q = npt.NDArray[np.int16]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Refresh:
    """An active DEVICE_COMM alarm of a gateway now stands for these devices."""

    gateway_id: int
    devices: list[str]

    def apply(self, conn: Conn) -> None:
        refresh_active(conn, Subject.GATEWAY, self.gateway_id, Condition.DEVICE_COMM,
                       float(len(self.devices)), {"devices": self.devices})  # fmt: skip


@dataclass(slots=True)
class _State:
    lost: npt.NDArray[np.bool_]  # per tag: its latest reading is BAD_COMM
    alarmed: dict[int, list[str]]  # gateways with an active DEVICE_COMM alarm: the devices it is about

    def copy(self) -> _State:
        return _State(self.lost.copy(), dict(self.alarmed))


class DeviceComm:
    def __init__(self, index: TagIndex, conn: Conn) -> None:
        self._devices = index.devices
        self._device_of = index.device_of
        # a tag out of service (or removed from the devices file) may no longer be read at all:
        # whether its device answers is told by the others
        self._has_device = (index.device_of >= 0) & index.config.in_service
        self._size = np.bincount(index.device_of[self._has_device], minlength=len(index.devices))
        self._gateway_of_device = np.array([g for g, _ in index.devices], dtype=np.int64)
        lookup = {int(t): i for i, t in enumerate(index.config.tag_id)}
        lost = np.zeros(index.config.size, bool)
        for (tag_id,) in conn.execute(
            "SELECT tag_id FROM readings_latest WHERE quality = %s", (int(Quality.BAD_COMM),)
        ):
            i = lookup.get(int(str(tag_id)))
            if i is not None:
                lost[i] = True
        alarmed = {
            int(str(r[0])): [str(d) for d in r[1]] if isinstance(r[1], list) else []
            for r in conn.execute(
                "SELECT subject_id, detail->'devices' FROM alarms WHERE subject_kind = 'gateway'"
                " AND condition = %s AND state <> 'NORMAL' AND active",
                (Condition.DEVICE_COMM.value,),
            )
        }
        self.state = _State(lost, alarmed)

    def _down(self) -> Bools:
        """Per device: every tag of it reads BAD_COMM."""
        counted = np.bincount(
            self._device_of[self.state.lost & self._has_device], minlength=len(self._devices)
        )
        down: Bools = (counted == self._size) & (self._size > 0)
        return down

    def observe(self, idx: I64, ts: I64, quality: Q) -> tuple[Bools, list[Transition], list[Refresh]]:
        """Take a step's readings: which of them are covered, the DEVICE_COMM changes, and the active
        alarms whose devices down changed (another device went down, or one of several came back)."""
        if idx.size == 0 or not self._devices:
            return np.zeros(idx.size, bool), [], []
        latest = np.lexsort((ts, idx))
        last = latest[np.append(idx[latest][1:] != idx[latest][:-1], True)]
        self.state.lost[idx[last]] = quality[last] == Quality.BAD_COMM
        down = self._down()
        device = self._device_of[idx]
        covered = (quality == Quality.BAD_COMM) & (device >= 0) & down[np.maximum(device, 0)]
        transitions, refreshes = self._changes(down, idx, ts)
        return covered, transitions, refreshes

    def _changes(self, down: Bools, idx: I64, ts: I64) -> tuple[list[Transition], list[Refresh]]:
        touched = np.unique(self._device_of[idx])
        gateways = np.unique(self._gateway_of_device[touched[touched >= 0]])
        out, refreshes = [], []
        for gateway in gateways.tolist():
            mine = self._gateway_of_device == gateway
            devices = [self._devices[i][1] for i in np.flatnonzero(mine & down).tolist()]
            if bool(devices) == (gateway in self.state.alarmed):
                if devices and devices != self.state.alarmed[gateway]:
                    self.state.alarmed[gateway] = devices
                    refreshes.append(Refresh(gateway, devices))
                continue
            level = 1 if devices else 0
            of_gateway = np.isin(self._device_of[idx], np.flatnonzero(mine))
            at = int(ts[of_gateway].max())
            if devices:
                self.state.alarmed[gateway] = devices
            else:  # the clear names the devices that were down
                devices = self.state.alarmed.pop(gateway)
            out.append(
                Transition(
                    gateway,
                    Condition.DEVICE_COMM,
                    level,
                    at,
                    float(len(devices) if level else 0),
                    None,
                    subject=Subject.GATEWAY,
                    detail={"devices": devices},
                )
            )
        return out, refreshes
