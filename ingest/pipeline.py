"""One ingest step: a group of MQTT messages → readings, dead letters and alarms, in one transaction.

The caller acknowledges the messages only after :meth:`Pipeline.process` returns (the
transaction committed). If it raises, nothing was committed, the rule engine's state is
rolled back with it, and the caller retries the same messages.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.types.json import Jsonb

from alarms.policy import DEFAULT, Policy
from alarms.store import apply_transitions, expire, open_alarm_levels
from hazardwatch import wire
from hazardwatch.clock import Clock, SystemClock, utc_from_ms
from hazardwatch.errors import WireError
from hazardwatch.quality import VALUED_QUALITIES, Quality
from ingest import deadletters, sequence
from ingest.clockskew import ClockWatch
from ingest.composites import open_composite_levels
from ingest.deadletters import DeadLetter
from ingest.devices import DeviceComm, Refresh
from ingest.evaluate import carry_state, readings_step, tick_step
from ingest.gateways import gateway_transitions
from ingest.storage import Backend, backend_of, read_readings, write_readings
from ingest.tagindex import TagIndex
from ingest.video import record_cameras, record_event
from rules.engine import RuleEngine, fault_band
from rules.types import Condition, Transition

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    mid: int = 0
    retained: bool = False  # delivered from the broker's retained store, not as it was published


@dataclass(slots=True)
class StepResult:
    readings: int = 0
    dead_letters: int = 0
    transitions: int = 0


@dataclass(slots=True)
class _Columns:
    """Accepted readings of the messages being processed: one array per message and column."""

    idx: list[npt.NDArray[np.int64]] = field(default_factory=list)
    ts: list[npt.NDArray[np.int64]] = field(default_factory=list)
    values: list[npt.NDArray[np.float64]] = field(default_factory=list)
    quality: list[npt.NDArray[np.int16]] = field(default_factory=list)
    clock: list[Transition] = field(default_factory=list)  # CLOCK_AHEAD raised by these messages
    heard: list[int] = field(default_factory=list)  # gateways that sent a live batch all on time


WARM_UP_MARGIN_MS = 60_000
MAX_WARM_UP_MS = 2 * 3_600_000  # longer delays or windows fill again from live data


@dataclass(frozen=True, slots=True)
class Limits:
    max_age_days: float = 30.0  # older readings are beyond raw retention
    max_future_s: float = 5.0  # readings stamped further ahead of our clock move no rule state
    max_payload_bytes: int = 4 * 1024 * 1024  # a larger message is dead-lettered unread
    max_seq_jump: int = 100_000  # a batch numbered further from the last starts a new sequence epoch
    max_gap_age_h: float = 24.0  # a gap older than this is given up (the agent keeps sent batches 24 h)
    resend_after_s: float = 30.0  # a gap open this long is asked for again…
    resend_every_s: float = 60.0  # …and again this often while it stays open…
    resend_attempts: int = 5  # …this many times; then its batches count as lost


@dataclass(frozen=True, slots=True)
class ResendRequest:
    """Batches a gateway numbered and ingest never received, to ask it for again."""

    enterprise: str
    gateway: str
    first_seq: int
    last_seq: int
    attempt: int


class Pipeline:
    def __init__(
        self,
        database_url: str,
        *,
        limits: Limits | None = None,
        clock: Clock | None = None,
        policy: Policy = DEFAULT,
        enterprises: Sequence[str] = (),
    ) -> None:
        """``enterprises``: the codes this worker owns (all when empty); its rules — and the
        silence its clock raises — cover only their tags, gateways and composites."""
        self._url = database_url
        self._enterprises = tuple(enterprises)
        self._policy = policy
        self._limits = limits or Limits()
        self._clock = clock or SystemClock()
        self._conn: Conn | None = None
        self._index: TagIndex | None = None
        self._engine: RuleEngine | None = None
        self._devices: DeviceComm | None = None
        self._clockwatch = ClockWatch(self._limits.max_future_s)
        self._band: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
        self._read = np.zeros(0, bool)  # per tag: its first reading is recorded (tags.first_read_at)
        self._newly_read = np.zeros(0, np.int64)  # tags whose first reading the open step records
        self._partition_days: set[date] = set()
        self._last_index_check_ms = 0
        self._backend: Backend = "plain"

    # -- connection and state -------------------------------------------------------------
    def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, connect_timeout=5)
            self._backend = backend_of(self._conn)
            self._partition_days.clear()
            self._load_index(self._conn, force=True)
        return self._conn

    def _load_index(self, conn: Conn, *, force: bool = False) -> None:
        now = self._clock.now_ms()
        if not force and now - self._last_index_check_ms < 10_000:
            return
        self._last_index_check_ms = now
        if not force and self._index is not None and TagIndex.current_version(conn) == self._index.version:
            conn.rollback()
            return
        index = TagIndex.load(conn, self._enterprises)
        engine = RuleEngine(index.config, index.composites)
        if self._engine is not None:
            carry_state(self._engine, engine)
        else:
            self._warm_up(conn, index, engine)
            for tag_id, condition, level, active in open_alarm_levels(conn):
                if active:
                    engine.seed(tag_id, Condition(condition), level)
            for subject, subject_id, level in open_composite_levels(conn):
                engine.seed_composite(subject, subject_id, level)
        devices = DeviceComm(index, conn)
        if self._index is None:
            self._clockwatch = ClockWatch.load(
                conn, list(index.gateways.values()), self._limits.max_future_s, now
            )
        conn.rollback()
        self._index, self._engine, self._devices = index, engine, devices
        self._band = fault_band(index.config.range_low, index.config.range_high)
        read = {int(str(r[0])) for r in conn.execute("SELECT id FROM tags WHERE first_read_at IS NOT NULL")}
        conn.rollback()
        self._read = np.fromiter((int(t) in read for t in index.config.tag_id), bool, index.config.size)
        logger.info("tag index loaded: %d tags", index.config.size)

    def _warm_up(self, conn: Conn, index: TagIndex, engine: RuleEngine) -> None:
        """After a start: the engine replays recent stored readings to rebuild delays and windows."""
        if engine.warm_up_ms == 0:
            return
        now = self._clock.now_ms()
        span_ms = min(engine.warm_up_ms + WARM_UP_MARGIN_MS, MAX_WARM_UP_MS)
        end = utc_from_ms(now + int(self._limits.max_future_s * 1000))  # what ingest accepts as on time
        ts, tag_ids, values, quality = read_readings(conn, utc_from_ms(now - span_ms), end)
        lookup = {int(t): i for i, t in enumerate(index.config.tag_id)}
        idx = np.fromiter((lookup.get(int(t), -1) for t in tag_ids), np.int64, tag_ids.size)
        known = idx >= 0
        engine.warm_up(idx[known], ts[known], values[known], quality[known])
        logger.info("rules warmed up from %d stored readings", int(known.sum()))

    def connect(self) -> Conn:
        """A separate connection to the same database (for work outside a step)."""
        return psycopg.connect(self._url, connect_timeout=5)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- one step -----------------------------------------------------------------------
    def tick(self) -> int:
        """The clock's turn: conditions that silence raises (GATEWAY_OFFLINE, STALE, DEVICE_COMM of a
        device that reported its loss once), shelves that expire and declared suppressions that start
        or end; returns the alarm changes."""
        conn = self._connection()
        self._load_index(conn)
        assert self._engine is not None  # noqa: S101 - loaded above
        assert self._devices is not None  # noqa: S101 - loaded above
        saved, saved_devices = self._engine.state.copy(), self._devices.state.copy()
        saved_clock = self._clockwatch.copy()
        try:
            now_ms = self._clock.now_ms()
            assert self._index is not None  # noqa: S101 - loaded above
            with conn.transaction():
                offline, down = gateway_transitions(conn, list(self._index.gateways.values()), now_ms)
                ticked = tick_step(self._engine, self._devices, now_ms, self._index.gateway_of_tag, down)
                clock_changes = self._clockwatch.due(now_ms)
                changed = apply_transitions(conn, [*offline, *ticked.transitions, *clock_changes],
                                            self._policy)  # fmt: skip
                for refresh in ticked.refreshes:
                    refresh.apply(conn)
                return changed + expire(conn, utc_from_ms(now_ms), self._policy)
        except BaseException:
            self._engine.state, self._devices.state = saved, saved_devices
            self._clockwatch = saved_clock
            if conn.closed or conn.broken:
                self._conn = None
            raise

    def resend_requests(self) -> list[ResendRequest]:
        """The gaps of this worker's gateways due to be asked for again (recorded as asked).

        A gap opened by live data ahead of an outage's backlog closes by itself as the backlog
        arrives; one still open after ``resend_after_s`` holds batches the broker acknowledged and
        did not deliver. Each request names at most ``wire.MAX_RESEND_BATCHES`` batches.
        """
        conn = self._connection()
        self._load_index(conn)
        assert self._index is not None  # noqa: S101 - loaded above
        limits = self._limits
        gateway_ids = list(self._index.gateways.values())
        try:
            with conn.transaction():
                for given in sequence.give_up(conn, gateway_ids, limits.max_gap_age_h):
                    logger.warning("gateway %d: %d gaps (%d batches) given up: older than %g h, or beyond "
                                   "%d open gaps; they count as lost", given.gateway_id, given.gaps,
                                   given.batches, limits.max_gap_age_h, sequence.MAX_OPEN_GAPS)  # fmt: skip
                rows = conn.execute(
                    "UPDATE gateway_seq_gaps s"
                    " SET resend_requested_at = now(), resend_requests = resend_requests + 1"
                    " FROM gateways g JOIN enterprises e ON e.id = g.enterprise_id"
                    " WHERE g.id = s.gateway_id AND s.gateway_id = ANY(%s) AND s.resend_requests < %s"
                    " AND s.opened_at < now() - make_interval(secs => %s)"
                    " AND (s.resend_requested_at IS NULL"
                    "      OR s.resend_requested_at < now() - make_interval(secs => %s))"
                    " RETURNING e.code, g.code, s.first_seq, s.last_seq, s.resend_requests",
                    (gateway_ids, limits.resend_attempts, limits.resend_after_s, limits.resend_every_s),
                ).fetchall()  # fmt: skip
        except BaseException:
            if conn.closed or conn.broken:
                self._conn = None
            raise
        requests = []
        for enterprise, gateway, first, last, attempt in rows:
            first, last, attempt = int(str(first)), int(str(last)), int(str(attempt))
            last = min(last, first + wire.MAX_RESEND_BATCHES - 1)
            requests.append(ResendRequest(str(enterprise), str(gateway), first, last, attempt))
            if attempt >= limits.resend_attempts:
                logger.warning("gateway %s/%s: batches %d..%d asked for %d times and not received; the "
                               "last request went out (they count as lost unless they still come)",
                               enterprise, gateway, first, last, attempt)  # fmt: skip
        return requests

    def process(self, messages: list[Message]) -> StepResult:
        conn = self._connection()
        self._load_index(conn)
        assert self._index is not None  # noqa: S101 - loaded above
        assert self._engine is not None  # noqa: S101 - loaded above
        assert self._devices is not None  # noqa: S101 - loaded above
        saved, saved_devices = self._engine.state.copy(), self._devices.state.copy()
        saved_clock = self._clockwatch.copy()
        self._newly_read = np.zeros(0, np.int64)
        try:
            with conn.transaction():
                result = self._process(conn, self._index, self._engine, self._devices, messages)
        except BaseException:
            self._engine.state, self._devices.state = saved, saved_devices
            self._clockwatch = saved_clock
            if conn.closed or conn.broken:
                self._conn = None
            raise
        self._read[self._newly_read] = True  # committed
        return result

    def _process(
        self, conn: Conn, index: TagIndex, engine: RuleEngine, devices: DeviceComm, messages: list[Message]
    ) -> StepResult:
        result = StepResult()
        letters: list[DeadLetter] = []
        columns = _Columns()
        now_ms = self._clock.now_ms()
        for message in messages:
            letters.extend(self._accept(conn, index, message, columns, now_ms))
        deadletters.store(conn, letters)
        result.dead_letters = len(letters)
        clock_changes = [*columns.clock, *self._clockwatch.due(now_ms, columns.heard)]
        idx = np.concatenate(columns.idx) if columns.idx else np.zeros(0, np.int64)
        transitions: list[Transition] = []
        refreshes: list[Refresh] = []
        if idx.size:
            ts = np.concatenate(columns.ts)
            values = np.concatenate(columns.values)
            quality = np.concatenate(columns.quality)
            tag_ids = index.config.tag_id[idx]
            self._ensure_partitions(conn, int(ts.min()), int(ts.max()))
            result.readings = write_readings(conn, self._backend, ts, tag_ids, values, quality)
            self._first_readings(conn, index, idx, ts)
            step = readings_step(engine, devices, idx, ts, values, quality, now_ms)
            transitions, refreshes = step.transitions, step.refreshes
        if transitions or clock_changes:
            result.transitions = apply_transitions(conn, [*transitions, *clock_changes], self._policy)
        for refresh in refreshes:
            refresh.apply(conn)
        return result

    def _first_readings(self, conn: Conn, index: TagIndex, idx: npt.NDArray[np.int64],
                        ts: npt.NDArray[np.int64]) -> None:  # fmt: skip
        """Record when tags read for the first time (online rates count them from then)."""
        unread = ~self._read[idx]
        if not unread.any():
            return
        tags, first = np.unique(idx[unread]), np.full(index.config.size, np.iinfo(np.int64).max)
        np.minimum.at(first, idx[unread], ts[unread])
        conn.execute(
            "UPDATE tags t SET first_read_at = least(coalesce(t.first_read_at, v.at), v.at)"
            " FROM unnest(%s::integer[], %s::timestamptz[]) v(id, at) WHERE t.id = v.id",
            ([int(t) for t in index.config.tag_id[tags]], [utc_from_ms(int(first[i])) for i in tags]),
        )
        self._newly_read = tags

    def _accept(self, conn: Conn, index: TagIndex, message: Message, columns: _Columns,
                now_ms: int) -> list[DeadLetter]:  # fmt: skip
        """Validate one message; append its good readings; return its dead letters."""
        if len(message.payload) > self._limits.max_payload_bytes:
            reason = (
                f"payload of {len(message.payload)} bytes exceeds {self._limits.max_payload_bytes}; not read"
            )
            return [DeadLetter(message.topic, message.payload, reason)]
        try:
            address = wire.parse_topic(message.topic)
            _not_retained(message, address)
            if address.kind in ("status", "health", "events", "cameras"):
                unknown = self._record(conn, index, address, message.payload, now_ms)
                if unknown:  # kept for what it knows; what it names beyond the ledger is evidence
                    reason = (
                        f"unknown camera {address.enterprise}/{', '.join(unknown)[:200]} (the others kept)"
                    )
                    return [DeadLetter(message.topic, message.payload, reason)]
                return []
            batch = _decode_readings(address, message.payload)
        except WireError as err:
            return [DeadLetter(message.topic, message.payload, str(err))]
        if batch.gateway != address.gateway:
            reason = f"gateway {batch.gateway!r} in the payload differs from the topic's {address.gateway!r}"
            return [DeadLetter(message.topic, message.payload, reason)]
        gateway_id = index.gateways.get((address.enterprise, address.gateway))
        if gateway_id is None:
            reason = f"unknown gateway {address.enterprise}/{address.gateway}"
            return [DeadLetter(message.topic, message.payload, reason)]
        sequence.record(conn, gateway_id, batch.seq, replay=batch.replay, at=utc_from_ms(now_ms),
                        max_jump=self._limits.max_seq_jump)  # fmt: skip
        letters, ahead = self._split(index, address.enterprise, message.topic, batch, columns, now_ms)
        if ahead:
            lead_ms = max(batch.ts_ms[i] for i in ahead) - now_ms
            columns.clock += self._clockwatch.ahead(
                gateway_id, now_ms, lead_ms, (batch.tags[i] for i in ahead)
            )
        elif not batch.replay:
            columns.heard.append(gateway_id)  # a live batch all on time: its clock may be right again
        return letters

    def _record(self, conn: Conn, index: TagIndex, address: wire.TopicAddress, payload: bytes,
                now_ms: int) -> list[str]:  # fmt: skip
        """A status, heartbeat, edge event or camera status, in a savepoint of its own: what the
        database refuses costs this message alone (a dead letter), not its neighbours. Returns the
        cameras a camera status names that are none of the gateway's in the ledger."""
        try:
            with conn.transaction():
                at = utc_from_ms(now_ms)
                if address.kind == "status":
                    _record_status(conn, index, address, payload, at)
                elif address.kind == "health":
                    _record_health(conn, index, address, payload, at)
                elif address.kind == "events":
                    newest = now_ms + int(self._limits.max_future_s * 1000)
                    record_event(conn, address, payload, self._policy, newest_ms=newest)
                else:
                    return record_cameras(conn, address, payload, now_ms, self._policy)[1]
        except psycopg.OperationalError:
            raise  # the connection, not the message: the step is retried
        except psycopg.DatabaseError as err:  # validation let through what the database refuses: a bug
            logger.exception("the database refused a %s message that passed validation", address.kind)
            raise WireError(f"refused by the database: {type(err).__name__}: {str(err)[:300]}") from err
        return []

    def _split(self, index: TagIndex, enterprise: str, topic: str, batch: wire.ReadingBatch,
               columns: _Columns, now: int) -> tuple[list[DeadLetter], list[int]]:  # fmt: skip
        """Append the batch's acceptable readings to ``columns``; return the dead letters of the
        others and the positions of those stamped ahead of our clock."""
        oldest = now - int(self._limits.max_age_days * DAY_MS)
        newest = now + int(self._limits.max_future_s * 1000)
        n = len(batch)
        codes = index.by_enterprise.get(enterprise, {})
        idx = np.fromiter((codes.get(code, -1) for code in batch.tags), np.int64, n)
        ts = np.array(batch.ts_ms, dtype=np.int64)
        values = np.fromiter((np.nan if v is None else v for v in batch.values), np.float64, n)
        quality = np.array(batch.quality, dtype=np.int16)
        # the first reason that applies, in this order, rejects a reading
        left = np.ones(n, bool)
        rejected: dict[str, list[int]] = {}
        valued = (quality >= 0) & (quality <= max(VALUED_QUALITIES))
        ahead_reason = f"timestamp ahead of the platform clock by more than {self._limits.max_future_s:g} s"
        for reason, bad in (
            (None, idx < 0),
            (ahead_reason, ts > newest),
            ("timestamp older than raw retention", ts < oldest),
            ("value is not a finite number", valued & ~np.isfinite(values)),
        ):
            hit = left & bad
            if hit.any():
                left &= ~hit
                for i in np.flatnonzero(hit).tolist():
                    key = reason or f"unknown tag {enterprise}/{batch.tags[i]}"
                    rejected.setdefault(key, []).append(i)
        self._beyond_range(idx, values, quality, left & valued)
        columns.idx.append(idx[left])
        columns.ts.append(ts[left])
        columns.values.append(values[left])
        columns.quality.append(quality[left])
        letters = []
        for reason, rows in rejected.items():
            payload = deadletters.readings_payload(
                [batch.tags[i] for i in rows],
                [batch.ts_ms[i] for i in rows],
                [batch.values[i] for i in rows],
                [batch.quality[i] for i in rows],
            )
            letters.append(DeadLetter(topic, payload, f"{reason} ({len(rows)} readings)"))
        return letters, rejected.get(ahead_reason, [])

    def _beyond_range(self, idx: npt.NDArray[np.int64], values: npt.NDArray[np.float64],
                      quality: npt.NDArray[np.int16], valued: npt.NDArray[np.bool_]) -> None:  # fmt: skip
        """A value beyond its tag's measuring range by more than NAMUR NE 43's band is no measurement:
        stored as INSTRUMENT_FAULT without a value (the rules raise FAULT on it, as on the number)."""
        assert self._band is not None  # noqa: S101 - set with the index
        low, high = self._band
        at = np.flatnonzero(valued)
        beyond = at[(values[at] < low[idx[at]]) | (values[at] > high[idx[at]])]
        quality[beyond] = Quality.INSTRUMENT_FAULT
        values[beyond] = np.nan

    def _ensure_partitions(self, conn: Conn, first_ms: int, last_ms: int) -> None:
        first = datetime.fromtimestamp(first_ms / 1000, tz=UTC).date()
        last = datetime.fromtimestamp(last_ms / 1000, tz=UTC).date()
        if first in self._partition_days and last in self._partition_days:
            return
        conn.execute("SELECT hw_ensure_partitions(%s, %s)", (first, last))
        day = first
        while day <= last:
            self._partition_days.add(day)
            day = date.fromordinal(day.toordinal() + 1)


def _not_retained(message: Message, address: wire.TopicAddress) -> None:
    """A batch or an event is news once: a retained one would come back to every new subscription
    (even after its identity was revoked), so it is refused."""
    if message.retained and address.kind in ("readings", "events"):
        raise WireError(f"retained {address.kind} are not taken (publish them without retain)")


def _decode_readings(address: wire.TopicAddress, payload: bytes) -> wire.ReadingBatch:
    if address.kind != "readings":
        raise WireError(f"ingest does not take {address.kind!r} messages")
    return wire.decode(payload)


def _record_status(
    conn: Conn, index: TagIndex, address: wire.TopicAddress, payload: bytes, at: datetime
) -> None:
    gateway_id = index.gateways.get((address.enterprise, address.gateway))
    if gateway_id is None:
        raise WireError(f"status of unknown gateway {address.enterprise}/{address.gateway}")
    doc = wire.load_json_document(payload, "status", MAX_HEALTH_BYTES)
    status = doc.get("status") if isinstance(doc, dict) else None
    if status not in ("online", "offline"):
        raise WireError(f"unknown gateway status {str(status)[:40]!r}")
    conn.execute(
        "UPDATE gateways SET status = %s, status_at = %s, first_seen_at = coalesce(first_seen_at, %s)"
        " WHERE id = %s",
        (status, at, at, gateway_id),
    )


MAX_HEALTH_BYTES = 256 * 1024


def _record_health(
    conn: Conn, index: TagIndex, address: wire.TopicAddress, payload: bytes, at: datetime
) -> None:
    """Keep a gateway's latest heartbeat as it came (a JSON object of plain, finite values)."""
    gateway_id = index.gateways.get((address.enterprise, address.gateway))
    if gateway_id is None:
        raise WireError(f"health of unknown gateway {address.enterprise}/{address.gateway}")
    health = wire.load_json_document(payload, "health", MAX_HEALTH_BYTES)
    if not isinstance(health, dict):
        raise WireError("health payload must be a JSON object")
    conn.execute(
        "UPDATE gateways SET health = %s, health_at = %s, first_seen_at = coalesce(first_seen_at, %s)"
        " WHERE id = %s",
        (Jsonb(health), at, at, gateway_id),
    )
