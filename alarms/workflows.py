"""The workflows process: escalation and notification on a clock tick.

Each tick, in order: the escalation tracker catches up with the journal, due escalation steps
are taken (and journaled), the notifier catches up (so a step taken now is told now), waiting
items become deliveries, and due deliveries are sent. Every part is idempotent and locks what
it works on with SKIP LOCKED, so several processes may run this side by side.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg

from alarms.channels import Channel, build_channels
from alarms.escalation import EscalationTracker, escalate_due
from alarms.notify import Notifier, Sender, schedule
from alarms.outbox import Conn, drain
from alarms.policy import Policy
from alarms.uplink import Uplink, UplinkUnavailable
from hazardwatch.clock import Clock

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TickReport:
    tracked: int
    escalated: int
    notified_rows: int
    scheduled: int
    sent: int
    uplinked: int = 0  # journal rows published to the uplink broker


class Workflows:
    def __init__(
        self,
        policy: Policy,
        clock: Clock,
        channels: dict[str, Channel],
        timezone: str = "Asia/Shanghai",
        batch: int = 500,
        uplink: Uplink | None = None,
    ) -> None:
        self.policy, self.clock, self.batch = policy, clock, batch
        self.uplink = uplink
        self.tracker = EscalationTracker(policy)
        self.notifier = Notifier(policy, clock, timezone)
        self.sender = Sender(policy, clock, channels)

    @classmethod
    def from_environment(
        cls, policy: Policy, clock: Clock, environ: Mapping[str, str], timezone: str = "Asia/Shanghai"
    ) -> Workflows:
        return cls(policy, clock, build_channels(policy.notifications, environ, clock), timezone)

    def tick(self, conn: Conn) -> TickReport:
        """One turn of the clock; ``conn`` must be in autocommit mode."""
        tracked = drain(conn, self.tracker, self.batch)
        escalated = escalate_due(conn, self.policy, self.clock)
        if escalated:
            tracked += drain(conn, self.tracker, self.batch)
        notified = drain(conn, self.notifier, self.batch)
        scheduled = schedule(conn, self.policy, self.clock)
        sent = self.sender.send_due(conn)
        uplinked = 0
        if self.uplink is not None:
            try:
                uplinked = drain(conn, self.uplink, self.batch)
            except UplinkUnavailable as err:  # the journal waits for the broker: nothing is skipped
                logger.debug("uplink waits: %s", err)
        return TickReport(tracked, escalated, notified, scheduled, sent, uplinked)


def run_once(url: str, workflows: Workflows) -> TickReport:
    """One tick on a connection of its own (``hazardwatch workflows --once``)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return workflows.tick(conn)


def serve(
    url: str, workflows: Workflows, interval_s: float = 1.0, stop: threading.Event | None = None
) -> None:
    """Tick until stopped, reconnecting (with capped backoff) when the database goes away."""
    stop = stop or threading.Event()
    delay, down = 1.0, False
    while not stop.is_set():
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                if down:
                    logger.info("database reachable again")
                    down, delay = False, 1.0
                logger.info("workflows running: escalation and notifications every %.1f s", interval_s)
                while not stop.wait(interval_s):
                    report = workflows.tick(conn)
                    if report.escalated or report.sent:
                        logger.info(
                            "escalation steps %d, deliveries scheduled %d, sent %d",
                            report.escalated,
                            report.scheduled,
                            report.sent,
                        )
        except psycopg.OperationalError as err:
            if not down:
                logger.warning("database unreachable (%s); retrying", err)
                down = True
            stop.wait(delay)
            delay = min(delay * 2, 30.0)
        except Exception:  # a supervisor loop: log, back off, go on
            logger.exception("workflows tick failed; retrying in %.0f s", delay)
            stop.wait(delay)
            delay = min(delay * 2, 30.0)
