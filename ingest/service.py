"""``hazardwatch ingest``: bring the schema up, synchronize the ledger, consume until stopped."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType

import psycopg

from alarms.policy import DEFAULT, Policy
from alarms.risk import risk_tick
from hazardwatch.clock import Clock, SystemClock, utc_from_ms
from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Plant
from hazardwatch.settings import parse_mqtt_url
from ingest.consumer import Consumer, subscriptions
from ingest.db import connect, ensure_database
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Limits, Pipeline
from ingest.storage import Retention, maintain, prune_dead_letters

logger = logging.getLogger(__name__)


def prepare(database_url: str, plant: Plant | None) -> None:
    """Create the database and schema if needed and load the ledger."""
    ensure_database(database_url)
    backend, _ = migrate(database_url)
    logger.info("storage backend: %s", backend)
    if plant is not None:
        with connect(database_url) as conn:
            report = sync_ledger(conn, plant)
        logger.info("ledger synchronized: %d enterprises, %d tags", report.enterprises, report.tags)


def serve(database_url: str, mqtt_url: str, *, plant: Plant | None, enterprises: Sequence[str] = (),
          worker_id: str = "1", policy: Policy = DEFAULT) -> None:  # fmt: skip
    prepare(database_url, plant)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    retention = Retention.from_env()
    maintenance = threading.Thread(
        target=run_maintenance, args=(database_url, retention, stop), name="storage-maintenance", daemon=True
    )
    maintenance.start()
    risk = threading.Thread(target=run_risk, args=(database_url, policy, stop), name="risk-tick", daemon=True)
    risk.start()
    consumer = Consumer(
        Pipeline(
            database_url,
            limits=limits_from_env(retention),
            policy=policy,
            enterprises=enterprises,
        ),
        parse_mqtt_url(mqtt_url),
        client_id=worker_client_id(worker_id),
        topics=subscriptions(enterprises),
        unsubscribe=previous_topics(database_url, worker_id),
        on_subscribed=lambda topics: record_topics(database_url, worker_id, topics),
    )
    consumer.run(stop)
    maintenance.join(timeout=10)
    risk.join(timeout=10)
    logger.info("ingest stopped after %d messages", consumer.processed)


def limits_from_env(retention: Retention, environ: Mapping[str, str] | None = None) -> Limits:
    """What ingest believes of the edge: ``HW_CLOCK_TOLERANCE_S`` (how far ahead of our clock a
    source time may be, 5 s) and ``HW_MAX_PAYLOAD_BYTES`` (4 MiB, as the broker's packet limit)."""
    env = os.environ if environ is None else environ
    base = Limits()
    try:
        tolerance = float(env.get("HW_CLOCK_TOLERANCE_S", base.max_future_s))
        payload = int(env.get("HW_MAX_PAYLOAD_BYTES", base.max_payload_bytes))
    except ValueError as err:
        raise ConfigError(f"HW_CLOCK_TOLERANCE_S and HW_MAX_PAYLOAD_BYTES must be numbers: {err}") from err
    if not 0 <= tolerance <= 300:
        raise ConfigError("HW_CLOCK_TOLERANCE_S must be between 0 and 300 seconds")
    if not 64 * 1024 <= payload <= 256 * 2**20:
        raise ConfigError("HW_MAX_PAYLOAD_BYTES must be between 65536 and 268435456")
    return Limits(max_age_days=retention.raw_days, max_future_s=tolerance, max_payload_bytes=payload)


def worker_client_id(worker_id: str) -> str:
    """One persistent MQTT session per worker id, whatever enterprises the worker owns."""
    return f"hw-ingest-{worker_id}"[:120]


def previous_topics(database_url: str, worker_id: str) -> list[str]:
    with connect(database_url) as conn:
        row = conn.execute("SELECT topics FROM ingest_workers WHERE worker_id = %s", (worker_id,)).fetchone()
    return [str(t) for t in row[0]] if row is not None and isinstance(row[0], list) else []


def record_topics(database_url: str, worker_id: str, topics: list[str]) -> None:
    with connect(database_url) as conn:
        conn.execute(
            "INSERT INTO ingest_workers (worker_id, topics) VALUES (%s, %s) ON CONFLICT (worker_id)"
            " DO UPDATE SET topics = EXCLUDED.topics, subscribed_at = now()",
            (worker_id, topics),
        )


MAINTENANCE_INTERVAL_S = 3600.0
DEAD_LETTER_PRUNE_S = 60.0  # a flood of hostile messages reaches the cap in minutes, not hours


def run_maintenance(database_url: str, retention: Retention, stop: threading.Event) -> None:
    """Partitions ahead and retention, at start and every hour, and the dead letters' cap every
    minute; a failure is retried in a minute."""
    next_full = 0.0
    while not stop.is_set():
        try:
            with connect(database_url) as conn:
                if time.monotonic() >= next_full:
                    maintain(conn, retention)
                    next_full = time.monotonic() + MAINTENANCE_INTERVAL_S
                else:
                    prune_dead_letters(conn, retention)
        except (psycopg.Error, OSError) as err:
            logger.warning("storage maintenance failed (%s); retrying in a minute", err)
        stop.wait(DEAD_LETTER_PRUNE_S)


RISK_INTERVAL_S = 60.0


def run_risk(database_url: str, policy: Policy, stop: threading.Event, clock: Clock | None = None) -> None:
    """Every minute: NO_COMMITMENT alarms and the dynamic risk levels (``alarms.risk.risk_tick``;
    one worker at a time, the others skip); a failure is retried at the next turn."""
    clock = clock or SystemClock()
    while not stop.is_set():
        try:
            with connect(database_url) as conn:
                risk_tick(conn, utc_from_ms(clock.now_ms()), policy)
        except (psycopg.Error, OSError) as err:
            logger.warning("risk tick failed (%s); retrying in a minute", err)
        stop.wait(RISK_INTERVAL_S)
