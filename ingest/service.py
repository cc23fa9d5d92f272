"""``hazardwatch ingest``: bring the schema up, synchronize the ledger, consume until stopped."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType

import psycopg

from alarms.policy import DEFAULT, Policy
from alarms.risk import risk_tick
from hazardwatch.clock import Clock, SystemClock, utc_from_ms
from hazardwatch.ledger import Plant
from hazardwatch.settings import parse_mqtt_url
from ingest.consumer import Consumer, subscriptions
from ingest.db import connect, ensure_database
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Limits, Pipeline
from ingest.storage import Retention, maintain

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
            limits=Limits(max_age_days=retention.raw_days),
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


def run_maintenance(database_url: str, retention: Retention, stop: threading.Event) -> None:
    """Partitions ahead and retention, at start and every hour; a failure is retried in a minute."""
    while not stop.is_set():
        try:
            with connect(database_url) as conn:
                maintain(conn, retention)
        except (psycopg.Error, OSError) as err:
            logger.warning("storage maintenance failed (%s); retrying in a minute", err)
            stop.wait(60)
            continue
        stop.wait(MAINTENANCE_INTERVAL_S)


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
