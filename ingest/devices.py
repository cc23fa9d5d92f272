"""Devices that do not answer: one DEVICE_COMM alarm on their gateway instead of a FAULT per tag.

A gateway reports every tag of a device it cannot reach as BAD_COMM (each poll for Modbus, once
at the loss for OPC-UA). A device is **down** while the latest reading of every one of its tags in
service is BAD_COMM; one readable tag, or a reading with another quality, means it answers.

- From the moment a device is down its tags' BAD_COMM readings are *covered*: their FAULT neither
  rises nor clears (ISA-18.2 suppression of consequential alarms; a PLC that drops off the
  network is one alarm, not a flood).
- Once a device has been down for ``DELAY_S`` (an on-delay: one lost answer raises nothing), its
  gateway has one active DEVICE_COMM alarm (离线; value: the number of devices down, detail:
  which), raised by the next reading or by the clock's tick, whichever comes first. It clears
  when they all answer again; its clear names the devices that were down last.
- A second device going down while the alarm is active, or one of several coming back, is no new
  alarm: the active alarm's value and detail follow (no state change, nothing to journal).
- A tag that alone reads BAD_COMM, its device answering for the others (a rejected register
  block, a node the server cannot read), still raises its FAULT.

The state is rebuilt from the database (the latest readings, the open alarms) whenever the tag
index loads, and copied and restored with the rule engine's state around each step. Without a
database (the backtest) it starts with every device answering and no alarm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg

from alarms.store import refresh_active
from hazardwatch.quality import Quality
from ingest.tagindex import TagIndex
from rules.limits import tag_time_order
from rules.types import Condition, Subject, Transition

Conn = psycopg.Connection[tuple[object, ...]]
# A device must stay down this long before it is an alarm (an on-delay against a lone timeout);
# its tags' BAD_COMM readings are covered from the start.
DELAY_S = 5.0
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
    since: I64  # per device: the source time it went down, -1 while it answers
    alarmed: dict[int, list[str]]  # gateways with an active DEVICE_COMM alarm: the devices it is about

    def copy(self) -> _State:
        return _State(self.lost.copy(), self.since.copy(), dict(self.alarmed))


class DeviceComm:
    def __init__(self, index: TagIndex, conn: Conn | None = None) -> None:
        self._devices = index.devices
        self._device_of = index.device_of
        # a tag out of service (or removed from the devices file) may no longer be read at all:
        # whether its device answers is told by the others
        self._has_device = (index.device_of >= 0) & index.config.in_service
        self._size = np.bincount(index.device_of[self._has_device], minlength=len(index.devices))
        self._gateway_of_device = np.array([g for g, _ in index.devices], dtype=np.int64)
        lookup = {int(t): i for i, t in enumerate(index.config.tag_id)}
        lost = np.zeros(index.config.size, bool)
        lost_ms = np.full(index.config.size, -1, np.int64)
        alarmed: dict[int, list[str]] = {}
        if conn is not None:
            for tag_id, ms in conn.execute(
                "SELECT tag_id, (extract(epoch FROM ts) * 1000)::bigint FROM readings_latest"
                " WHERE quality = %s",
                (int(Quality.BAD_COMM),),
            ):
                i = lookup.get(int(str(tag_id)))
                if i is not None:
                    lost[i], lost_ms[i] = True, int(str(ms))
            alarmed = {
                int(str(r[0])): [str(d) for d in r[1]] if isinstance(r[1], list) else []
                for r in conn.execute(
                    "SELECT subject_id, detail->'devices' FROM alarms WHERE subject_kind = 'gateway'"
                    " AND condition = %s AND state <> 'NORMAL' AND active",
                    (Condition.DEVICE_COMM.value,),
                )
            }
        self.state = _State(lost, np.full(len(self._devices), -1, np.int64), alarmed)
        down = self._down()
        with_device = self._has_device & lost
        np.maximum.at(self.state.since, self._device_of[with_device], lost_ms[with_device])
        self.state.since[~down] = -1

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
        latest = tag_time_order(idx, ts)
        last = latest[np.append(idx[latest][1:] != idx[latest][:-1], True)]
        self.state.lost[idx[last]] = quality[last] == Quality.BAD_COMM
        down = self._down()
        device = self._device_of[idx]
        known = device >= 0
        newest = np.full(len(self._devices), -1, np.int64)
        np.maximum.at(newest, device[known], ts[known])
        since = self.state.since
        went = down & (since < 0)
        since[went] = newest[went]  # down since the reading that showed it
        since[~down] = -1
        covered = (quality == Quality.BAD_COMM) & known & down[np.maximum(device, 0)]
        touched = np.unique(device[known])
        transitions, refreshes = self._changes(np.unique(self._gateway_of_device[touched]), int(ts.max()))
        return covered, transitions, refreshes

    def tick(self, now_ms: int) -> tuple[list[Transition], list[Refresh]]:
        """The clock's turn: a device down for DELAY_S raises even when nothing more arrives from it
        (OPC-UA reports the loss once)."""
        waiting = self.state.since >= 0
        gateways = set(self._gateway_of_device[waiting].tolist()) | set(self.state.alarmed)
        return self._changes(np.array(sorted(gateways), dtype=np.int64), now_ms)

    def _changes(self, gateways: I64, now_ms: int) -> tuple[list[Transition], list[Refresh]]:
        """DEVICE_COMM of these gateways at ``now_ms``: active while a device has been down DELAY_S."""
        since = self.state.since
        due = (since >= 0) & (now_ms - since >= int(DELAY_S * 1000))
        out, refreshes = [], []
        for gateway in gateways.tolist():
            mine = self._gateway_of_device == gateway
            devices = [self._devices[i][1] for i in np.flatnonzero(mine & due).tolist()]
            if bool(devices) == (gateway in self.state.alarmed):
                if devices and devices != self.state.alarmed[gateway]:
                    self.state.alarmed[gateway] = devices
                    refreshes.append(Refresh(gateway, devices))
                continue
            if not devices and (mine & (since >= 0)).any():
                continue  # the devices named came back, another is down but not yet for DELAY_S
            level = 1 if devices else 0
            at = now_ms
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
