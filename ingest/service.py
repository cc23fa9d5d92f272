"""``hazardwatch ingest``: bring the schema up, synchronize the ledger, consume until stopped."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from hazardwatch.ledger import Plant
from hazardwatch.settings import parse_mqtt_url
from ingest.consumer import Consumer, subscriptions
from ingest.db import connect, ensure_database
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Pipeline

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
          worker_id: str = "1") -> None:  # fmt: skip
    prepare(database_url, plant)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    suffix = "-".join(enterprises) if enterprises else "all"
    consumer = Consumer(
        Pipeline(database_url),
        parse_mqtt_url(mqtt_url),
        client_id=f"hw-ingest-{worker_id}-{suffix}"[:120],
        topics=subscriptions(enterprises),
    )
    consumer.run(stop)
    logger.info("ingest stopped after %d messages", consumer.processed)
