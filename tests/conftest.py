from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from hazardwatch.ledger import Plant, load_plant
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Pipeline
from tests.support import SAMPLE_DEVICES, private_database, private_mosquitto


@pytest.fixture
def sample_plant() -> Plant:
    return load_plant(SAMPLE_DEVICES)


@pytest.fixture(scope="session")
def mqtt_port() -> Iterator[int]:
    """A private Mosquitto for the whole test session (tests use distinct client ids)."""
    with private_mosquitto() as port:
        yield port


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh, empty database for one test."""
    with private_database() as url:
        yield url


@pytest.fixture
def conn(database_url: str, sample_plant: Plant) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to a fresh database with the schema and the sample ledger."""
    migrate(database_url)
    with psycopg.connect(database_url) as connection:
        sync_ledger(connection, sample_plant)
        connection.commit()
        connection.autocommit = True
        yield connection


@pytest.fixture
def pipeline(database_url: str, sample_plant: Plant) -> Iterator[Pipeline]:
    """An ingest pipeline on a fresh database with the schema and the sample ledger."""
    migrate(database_url)
    with psycopg.connect(database_url) as connection:
        sync_ledger(connection, sample_plant)
    p = Pipeline(database_url)
    yield p
    p.close()


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves threads running behind it."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not t.daemon and t.name != "asyncio_0"
    ]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked threads: {still}"
